"""Helpers for the tariff tests: compact tariff builders and local-time constructors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tariffs.core.tariff_document import Tariff
from tariffs.core.tariff_json import load_tariff

D = Decimal


def tariff(elements: list[dict[str, Any]], **extra: Any) -> Tariff:
    """A Tariff from element dicts (numbers given as strings/ints are read as exact decimals)."""
    body = {
        "country_code": "NL",
        "party_id": "EVH",
        "id": extra.pop("id", "T1"),
        "currency": "EUR",
        "elements": elements,
        "last_updated": "2026-01-01T00:00:00Z",
        **extra,
    }
    return load_tariff(json.dumps(body))


def pc(kind: str, price: str, vat: str | None = None, step: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": D(price), "step_size": step}
    if vat is not None:
        out["vat"] = D(vat)
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in out.items()}


def el(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        out["restrictions"] = restrictions
    return out


def local(text: str, tz: str = "Europe/Amsterdam", fold: int = 0) -> datetime:
    """A local wall-clock time in ``tz`` as aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def mins(n: float) -> timedelta:
    return timedelta(minutes=n)
