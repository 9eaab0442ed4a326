"""Field helpers shared by the domain models: tolerant re-casing, closed value sets, URLs and DateTimes."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlsplit

from kernel.timeutil import parse_datetime


def upper(value: Any) -> Any:
    """Accept re-cased enum strings from peers (``rfid`` -> ``RFID``)."""
    return value.upper() if isinstance(value, str) else value


def one_of(allowed: Collection[str]) -> Callable[[Any], Any]:
    """A validator admitting only ``allowed`` values (exactly as spelled; None passes, for optional fields),
    naming them in the error."""
    names = sorted(allowed)

    def check(value: Any) -> Any:
        if value is not None and value not in allowed:
            raise ValueError(f"must be one of {names}")
        return value

    return check


def spelled_as(allowed: Collection[str]) -> Callable[[Any], Any]:
    """A before-validator giving a value of ``allowed`` in any case its spelling there
    (``iec_62196_t2`` -> ``IEC_62196_T2``, ``iec_60309_2_SINGLE_16`` -> ``IEC_60309_2_single_16``); any other
    value is left for :func:`one_of` to refuse."""
    by_upper = {name.upper(): name for name in allowed}

    def respell(value: Any) -> Any:
        return by_upper.get(value.strip().upper(), value) if isinstance(value, str) else value

    return respell


def each_one_of(allowed: Collection[str]) -> Callable[[list[str] | None], list[str] | None]:
    """:func:`one_of` for every item of a list (the error names the first item that is not allowed)."""
    check = one_of(allowed)

    def check_all(values: list[str] | None) -> list[str] | None:
        for i, value in enumerate(values or ()):
            try:
                check(value)
            except ValueError as exc:
                raise ValueError(f"[{i}] {value!r} {exc}") from None
        return values

    return check_all


def is_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host, without spaces (OCPI ``URL``); shared with the
    provisioning CLI (:func:`evhub.provisioning.check_url`)."""
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value
        return valid and (parts.port is None or parts.port > 0)  # .port raises on one that is not a number
    except ValueError:
        return False


def http_url(value: str | None) -> str | None:
    """An absolute http(s) URL with a host, without spaces (OCPI ``URL``)."""
    if value is None:
        return None
    if not is_http_url(value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    return value


def date_time_text(value: str | None) -> str | None:
    """An OCPI DateTime kept as given (it is rendered in OCPI's form on the way out); refuses what is none."""
    if value is None:
        return None
    try:
        parse_datetime(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a date and time (RFC 3339, e.g. 2026-01-01T00:00:00Z)") from None
    return value
