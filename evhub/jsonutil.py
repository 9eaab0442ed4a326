"""Exact JSON: Decimals are written as JSON numbers with their exact digits and read back as Decimals.

The database engine uses :func:`dumps`/:func:`loads` for every JSON column, so an amount inside a stored OCPI
object (a CDR's ``total_cost``) is never a float on its way in or out; HTTP clients sending such objects use
:func:`dumps` too.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

_MARK = "\u2063evhub-decimal:"


def _mark(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite decimal {value} cannot be JSON")
        return _MARK + format(value, "f")
    if isinstance(value, dict):
        return {str(k): _mark(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mark(v) for v in value]
    if isinstance(value, datetime):
        from evhub.timeutil import format_rfc3339

        return format_rfc3339(value)
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON text; Decimals become exact JSON numbers. (A float someone else sent, e.g. inside a raw OCPP
    payload kept for audit, is written as Python writes it; the hub's own amounts are never floats.)"""
    kwargs["ensure_ascii"] = False
    text = json.dumps(_mark(value), **kwargs)
    if _MARK not in text:
        return text
    return _unmark(text)


def _unmark(text: str) -> str:
    out = []
    i = 0
    token = '"' + _MARK
    while True:
        j = text.find(token, i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.index('"', j + len(token))
        out.append(text[j + len(token) : k])
        i = k + 1


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as Decimal."""
    return json.loads(text, parse_float=Decimal)
