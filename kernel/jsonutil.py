"""Exact JSON, the hub's one codec: Decimals are written with their exact digits and read back as Decimals.

The database engine uses :func:`dumps`/:func:`loads` for every JSON column, so an amount inside a stored OCPI
object (a CDR's ``total_cost``) is never a float on its way in or out; HTTP clients and servers sending such
objects use :func:`dumps` too, and so do the CLI's JSON outputs.

* :func:`loads` parses JSON with every non-integer number as :class:`~decimal.Decimal` (integers stay ints).
* :func:`to_jsonable` turns Decimals, datetimes (RFC 3339 UTC), pydantic models (``exclude_none``), enums,
  mappings and sequences into JSON-ready values; Decimals become strings (``"1.25"``), stay Decimals
  (``decimals_as="keep"``) or are marked to become numbers (``"number"``).
* :func:`dumps` writes JSON text with Decimals as exact JSON numbers (or, ``decimals_as="string"``, strings),
  never through a float.
* :func:`dumps_compact` is the same rule for the wire (OCPP frames): compact, and fast because it takes values
  that are already JSON data plus Decimals (no walk through :func:`to_jsonable`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from kernel.timeutil import format_rfc3339

DecimalsAs = Literal["number", "string", "keep"]

_MARK = "\u2063evhub-decimal:"


_DECODER = json.JSONDecoder(
    parse_float=Decimal
)  # built once: json.loads(..., parse_float=) builds one per call


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as Decimal; raises ``ValueError`` for text that is not JSON."""
    return _DECODER.decode(text.decode() if isinstance(text, bytes) else text)


def to_jsonable(value: Any, *, decimals_as: DecimalsAs = "string") -> Any:
    """``value`` as plain JSON-ready data (see the module docstring for what becomes what).

    ``decimals_as="number"`` marks each Decimal (an invisible-separator prefixed string) so that :func:`dumps`
    writes it as a JSON number with its exact digits; a non-finite Decimal then cannot be JSON (ValueError).
    """
    if isinstance(value, Decimal):
        if decimals_as == "keep":
            return value
        if decimals_as == "number":
            if not value.is_finite():
                raise ValueError(f"non-finite decimal {value} cannot be JSON")
            return _MARK + format(value, "f")
        return format(value, "f")
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="python", exclude_none=True), decimals_as=decimals_as)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, decimals_as=decimals_as) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, decimals_as=decimals_as) for v in value]
    if isinstance(getattr(value, "value", None), str):  # enums
        return value.value
    return value


def dumps(value: Any, *, decimals_as: Literal["number", "string"] = "number", **kwargs: Any) -> str:
    """JSON text (``ensure_ascii=False``; other keyword arguments go to :func:`json.dumps`); Decimals become
    exact JSON numbers, or strings with ``decimals_as="string"``. (A float someone else sent, e.g. inside a
    raw OCPP payload kept for audit, is written as Python writes it; the hub's own amounts are never floats.)"""
    kwargs["ensure_ascii"] = False
    text = json.dumps(to_jsonable(value, decimals_as=decimals_as), **kwargs)
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


def _mark_decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite decimal {value} cannot be JSON")
        return _MARK + format(value, "f")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_mark_decimal)


def dumps_compact(value: Any) -> str:
    """Compact JSON text of plain JSON data (dicts, lists, str, int, float, bool, None) and Decimals, the
    Decimals as exact JSON numbers; anything else is a TypeError."""
    text = _COMPACT.encode(value)
    return _unmark(text) if _MARK in text else text
