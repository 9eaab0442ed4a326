"""Loading and dumping OCPI JSON with exact numbers: floats never appear, numbers become Decimal.

:func:`loads` parses JSON text with ``parse_float=Decimal`` (and integers as ints), :func:`load_tariff`,
:func:`load_tariffs` and :func:`load_charging_periods` validate into the models of :mod:`tariffs.model`, and
:func:`dumps` writes Decimals as JSON numbers verbatim (no float round-trip).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from evhub.timeutil import format_rfc3339
from tariffs.model import ChargingPeriod, Tariff


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as :class:`Decimal`."""
    return json.loads(text, parse_float=Decimal)


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


_MARK = "\u2063dec:"
_MARK_RE = re.compile('"' + _MARK + r'(-?[0-9.E+-]+)"')


def to_jsonable(value: Any, *, decimals_as: str = "string") -> Any:
    """Convert Decimals/datetimes/models into JSON-ready values.

    ``decimals_as="string"`` gives ``"1.25"``; ``"keep"`` leaves Decimals as they are; ``"number"`` marks Decimals (an invisible-separator prefixed
    string) so that :func:`dumps` writes them as JSON numbers with their exact digits, never via a float.
    """
    if isinstance(value, Decimal):
        if decimals_as == "keep":
            return value
        text = format(value, "f")
        return text if decimals_as == "string" else _MARK + text
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="python", exclude_none=True), decimals_as=decimals_as)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, decimals_as=decimals_as) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, decimals_as=decimals_as) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):  # enums
        return value.value
    return value


def dumps(value: Any, *, decimals_as: str = "number", indent: int | None = None) -> str:
    """JSON text with Decimals written exactly (as numbers by default, or as strings)."""
    text = json.dumps(to_jsonable(value, decimals_as=decimals_as), indent=indent, ensure_ascii=False)
    return _MARK_RE.sub(r"\1", text) if decimals_as == "number" else text
