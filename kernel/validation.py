"""Shared checks of input from outside: one line for what a pydantic model refused (for HTTP 4xx messages and CLI
errors), whole numbers from query strings and forms (:func:`ascii_int`), and bounds on the unknown fields a model keeps (``extra="allow"``), so that a peer can neither store
megabytes in them nor nest them deeper than any reader recurses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kernel.timeutil import ensure_utc

INT64_MAX = 2**63 - 1
"""The largest id, limit or offset any table or query takes (PostgreSQL BIGINT, SQLite INTEGER)."""
MAX_EXTRA_BYTES = 4096
"""Most bytes (as compact JSON) the unknown fields of one object may take."""
MAX_EXTRA_DEPTH = 8
"""Deepest nesting of lists and objects in an unknown field."""


def describe_validation_error(exc: ValidationError) -> str:
    """``field.path: message; other.field: message`` for every error of ``exc``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(object)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def ascii_int(raw: str | None, *, minimum: int = 0, maximum: int = INT64_MAX) -> int | None:
    """``raw`` (surrounding blanks ignored) as an int when it is ASCII digits from ``minimum`` to ``maximum``;
    None otherwise. ``str.isdigit`` is no check: ``'²'.isdigit()`` is True and ``int('²')`` raises, ``int('٣')``
    is 3, and twenty digits overflow every integer column."""
    text = (raw or "").strip()
    if not text or len(text) > 19 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def _depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests, counting no further than ``limit + 1`` (never recursing past it)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def check_extras(
    extra: dict[str, Any] | None, *, max_bytes: int = MAX_EXTRA_BYTES, max_depth: int = MAX_EXTRA_DEPTH
) -> None:
    """Raise ValueError (a pydantic validation error inside a validator) when the unknown fields ``extra`` nest
    deeper than ``max_depth`` or take more than ``max_bytes`` as JSON."""
    if not extra:
        return
    if _depth(extra, max_depth) > max_depth:
        raise ValueError(f"unknown fields may nest at most {max_depth} levels deep")
    size = len(json.dumps(extra, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    if size > max_bytes:
        raise ValueError(f"unknown fields take {size} bytes; at most {max_bytes} are kept")


def ci_string(value: str) -> str:
    """``value`` if it is an OCPI CiString's text (printable ASCII), else ValueError (pydantic validators)."""
    if not (value.isascii() and value.isprintable()):
        raise ValueError("must be printable ASCII (an OCPI CiString)")
    return value


def ocpi_string(value: str) -> str:
    """``value`` if it is an OCPI string's text (printable: no line breaks, no tabs), else ValueError."""
    if not value.isprintable():
        raise ValueError("must be printable (an OCPI string: no line breaks, no tabs)")
    return value


def utc_instant(value: datetime) -> datetime:
    """``value`` as aware UTC (a naive instant read as UTC, as OCPI's DateTime without offset means)."""
    return ensure_utc(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
