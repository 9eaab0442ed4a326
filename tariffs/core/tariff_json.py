"""Loading OCPI tariffs and charging periods from JSON with exact numbers: floats never appear.

:func:`load_tariff`, :func:`load_tariffs` and :func:`load_charging_periods` parse with the hub's one exact
codec, :mod:`kernel.jsonutil` (``loads``: numbers as Decimal), and validate into the models of
:mod:`tariffs.core.tariff_document`. ``loads``, ``dumps`` and ``to_jsonable`` are that codec's, named here for the
tariff code's callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernel.jsonutil import dumps, loads, to_jsonable
from tariffs.core.tariff_document import ChargingPeriod, Tariff

__all__ = ["dumps", "load_charging_periods", "load_tariff", "load_tariffs", "loads", "to_jsonable"]


def _unwrap(data: Any) -> Any:
    # Accept an OCPI response envelope {"data": ..., "status_code": ...}.
    if isinstance(data, Mapping) and "data" in data and "status_code" in data:
        return data["data"]
    return data


def load_tariff(text: str | bytes | Mapping[str, Any]) -> Tariff:
    """One Tariff from JSON text (or an already parsed mapping, which must not contain floats)."""
    data = _unwrap(loads(text) if isinstance(text, str | bytes) else text)
    return Tariff.model_validate(data)


def load_tariffs(text: str | bytes) -> list[Tariff]:
    """A Tariff or a list of Tariffs (e.g. a GET response) from JSON text."""
    data = _unwrap(loads(text))
    items = data if isinstance(data, list) else [data]
    return [Tariff.model_validate(item) for item in items]


def load_charging_periods(text: str | bytes) -> list[ChargingPeriod]:
    """OCPI charging periods: a list, or a CDR/Session object with a ``charging_periods`` field."""
    data = _unwrap(loads(text))
    if isinstance(data, Mapping):
        data = data.get("charging_periods", [])
    return [ChargingPeriod.model_validate(item) for item in data]
