"""T4 (issue #12): tariffs that cannot be right were accepted (currency "EURO", negative prices, step_size 0,
min_price above max_price, an end before the start, restrictions that never match, reservation elements
with ENERGY/PARKING_TIME); the session then failed for ever.

Rule: the Tariff model refuses them, so every door (import, API, OCPI input, quotes, grid versions) does:
each is a pydantic ValidationError naming the field. OCPI 2.2.1: ``currency`` "ISO-4217 code";
``step_size`` "Minimum amount to be billed ... billed in this step_size blocks"; ``reservation`` "A
reservation can only have: FLAT and TIME TariffDimensions"; ``end_date`` "valid until this day (exclusive)";
``max_kwh`` "valid until this amount of energy (exclusive)".
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kernel.db.engine import Database
from tariffs.core.tariff_document import Tariff
from tariffs.core.tariff_json import load_tariff, loads

ROOT = Path(__file__).resolve().parents[2]

BASE: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "EVH",
    "id": "T1",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": "0.25", "vat": "21", "step_size": 1}],
            "restrictions": {"min_kwh": "0", "max_kwh": "10"},
        }
    ],
    "min_price": {"excl_vat": "1.00", "incl_vat": "1.21"},
    "max_price": {"excl_vat": "10.00", "incl_vat": "12.10"},
    "start_date_time": "2026-01-01T00:00:00Z",
    "end_date_time": "2026-07-01T00:00:00Z",
    "last_updated": "2026-01-01T00:00:00Z",
}


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = body
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return body


CASES = [
    ("currency", "EURO", "currency"),
    ("currency", "XYZ", "currency"),
    ("elements.0.price_components.0.price", "-0.01", "price"),
    ("elements.0.price_components.0.vat", "-1", "vat"),
    ("elements.0.price_components.0.vat", "100.5", "vat"),
    ("elements.0.price_components.0.step_size", 0, "step_size"),
    ("elements.0.price_components.0.step_size", -5, "step_size"),
    ("min_price", {"excl_vat": "11.00", "incl_vat": "1.21"}, "min_price"),
    ("min_price", {"excl_vat": "1.00", "incl_vat": "13.00"}, "min_price"),
    ("min_price", {"excl_vat": "-1.00"}, "min_price"),
    ("max_price", {"excl_vat": "10.00", "incl_vat": "-1"}, "max_price"),
    ("end_date_time", "2026-01-01T00:00:00Z", "end_date_time"),
    ("end_date_time", "2025-12-31T00:00:00Z", "end_date_time"),
    ("elements.0.restrictions", {"min_kwh": "10", "max_kwh": "10"}, "min_kwh"),
    ("elements.0.restrictions", {"min_power": "50", "max_power": "11"}, "min_power"),
    ("elements.0.restrictions", {"min_current": "32", "max_current": "16"}, "min_current"),
    ("elements.0.restrictions", {"min_duration": 3600, "max_duration": 60}, "min_duration"),
    ("elements.0.restrictions", {"start_date": "2026-05-01", "end_date": "2026-05-01"}, "start_date"),
    ("elements.0.restrictions", {"reservation": "RESERVATION"}, "type"),
    (
        "elements.0",
        {
            "price_components": [{"type": "PARKING_TIME", "price": "1", "step_size": 1}],
            "restrictions": {"reservation": "RESERVATION_EXPIRES"},
        },
        "type",
    ),
]


@pytest.mark.parametrize(("path", "value", "field"), CASES, ids=[f"{c[0]}={c[1]}" for c in CASES])
def test_invalid_tariff_is_a_validation_error_naming_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Tariff.model_validate(_with(path, value))
    assert field in str(info.value), str(info.value)


def test_valid_base_and_boundaries_are_accepted() -> None:
    Tariff.model_validate(BASE)
    t = Tariff.model_validate(_with("currency", " eur "))
    assert t.currency == "EUR"
    Tariff.model_validate(_with("elements.0.price_components.0.vat", "0"))
    Tariff.model_validate(_with("elements.0.price_components.0.vat", "100"))
    Tariff.model_validate(_with("elements.0.price_components.0.price", "0"))
    Tariff.model_validate(_with("min_price", {"excl_vat": "10.00", "incl_vat": "12.10"}))  # min == max
    reservation_time = _with("elements.0.price_components.0.type", "TIME")
    reservation_time["elements"][0]["restrictions"] = {"reservation": "RESERVATION_EXPIRES"}
    Tariff.model_validate(reservation_time)


# OCPI 2.2.1 examples/tariff_5_free_of_charge.json (tag 2.2.1 of ocpi/ocpi), verbatim: FLAT with step_size 0.
FREE_OF_CHARGE = """{
  "country_code": "DE",
  "party_id": "ALL",
  "id": "15",
  "currency": "EUR",
  "elements": [{
    "price_components": [{
      "type": "FLAT",
      "price": 0.00,
      "step_size": 0
    }]
  }],
  "last_updated": "2015-06-29T20:39:09Z"
}"""


def test_spec_free_of_charge_example_with_flat_step_0_loads() -> None:
    assert load_tariff(FREE_OF_CHARGE).elements[0].price_components[0].step_size == 0


def test_shipped_demo_tariffs_still_load() -> None:
    demo = loads((ROOT / "evhub" / "demo_data" / "tariffs.json").read_text())
    assert demo
    for data in demo:
        assert load_tariff(json.dumps(data, default=str)).id == data["id"]


async def test_stored_invalid_version_fails_the_session_with_the_field(db: Database) -> None:
    """A version stored before this rule (currency "EURO") is refused when loaded: FAILED naming the field.

    Regression guard for rows stored before the rule (it held before too, via the rounding's currency check)."""
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from kernel.models import Cdr, ChargingSession, PricingState, TariffVersion
    from tariffs.rating import rate_pending
    from tests.world.demo_network import seed_pricing_network
    from tests.world.sessions import seed_ended_session

    await seed_pricing_network(db)
    async with db.session() as s:
        for row in (await s.scalars(select(TariffVersion))).all():
            row.data = {**row.data, "currency": "EURO"}
    sid = await seed_ended_session(db, "AMS-01-1", datetime(2026, 11, 10, 12, 0, tzinfo=UTC), 30, "5")
    assert await rate_pending(db, ()) == 0
    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        assert session is not None and session.pricing_state == PricingState.FAILED
        assert "currency" in (session.pricing_error or "") and "EURO" in (session.pricing_error or "")
        assert await s.scalar(select(func.count()).select_from(Cdr)) == 0
