"""T2 (issue #12): OCPI tariff replacement, ``tariff_ids = [OLD (ended), NEW]``: the first id won even when it had
expired, so sessions after the replacement failed (T1) and the quote answered OLD's price.

Rule: a connector's price at an instant is chosen among the stored versions of ALL its tariff ids (each under the
publication rule of :func:`tariffs.tariff_versions.effective_from`): the valid one with the latest start, per
instant, by the engine. OCPI 2.2.1 mod_tariffs, max-price example: "A Connector of a Location can have multiple
Tariffs (IDs) assigned. By assigning both, the old and the new tariff ID, they will automatically be replaced."
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from evhub import provisioning as prov
from evhub.app import RunningHub
from kernel.db.engine import Database
from kernel.models import EVSE, Cdr, ChargingSession, Connector, Location, PricingState
from kernel.settings import load_settings
from portal.price import live_price
from tariffs.component import PricingComponent
from tariffs.rating import rate_pending
from tariffs.tariff_versions import versions_for_connector
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

PUBLISHED = datetime(2026, 5, 1, tzinfo=UTC)  # both stored (and pushed) well before the replacement


def _tariff(tariff_id: str, price: str, **validity: str) -> dict:
    return {
        "country_code": "NL",
        "party_id": "AMP",
        "id": tariff_id,
        "currency": "EUR",
        "type": "REGULAR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": price, "step_size": 1}]}],
        "last_updated": "2026-05-01T00:00:00Z",
        **validity,
    }


OLD = _tariff("OLD", "0.25", end_date_time="2026-07-01T00:00:00Z")  # its last day: 30 June (UTC)
NEW = _tariff("NEW", "0.40", start_date_time="2026-07-01T00:00:00Z")


async def _replace(db: Database) -> None:
    """The AMS-CENTRAAL connectors list both tariffs, old first (as the CPO assigns them ahead of the change)."""
    await seed_pricing_network(db)
    async with db.session() as s:
        for data in (OLD, NEW):
            row, _ = await prov.import_tariff(s, data)
            row.created_at = PUBLISHED
        loc = await s.scalar(select(Location).where(Location.ocpi_id == "AMS-CENTRAAL"))
        assert loc is not None
        connectors = await s.scalars(
            select(Connector).join(EVSE, Connector.evse_pk == EVSE.id).where(EVSE.location_id == loc.id)
        )
        for c in connectors:
            c.tariff_ids = ["OLD", "NEW"]


async def _cdr(db: Database, uid: str) -> Cdr:
    async with db.session() as s:
        session = await s.scalar(select(ChargingSession).where(ChargingSession.session_uid == uid))
        assert session is not None
        assert session.pricing_state == PricingState.PRICED, session.pricing_error
        cdr = await s.scalar(select(Cdr).where(Cdr.session_id == session.id))
        assert cdr is not None
        return cdr


async def test_a_session_after_the_replacement_is_priced_by_the_new_tariff(db: Database) -> None:
    await _replace(db)
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 7, 2, 10, 0, tzinfo=UTC), 60, "10", uid="july")
    assert await rate_pending(db, ()) == 1
    cdr = await _cdr(db, "july")
    assert cdr.total_cost_excl_vat == Decimal("4.00")  # 10 kWh x 0.40
    assert [t["id"] for t in cdr.data["tariffs"]] == ["NEW"]
    assert [v["tariff_id"] for v in cdr.tariff_versions] == ["NEW"]
    assert all(v["row_ids"] for v in cdr.tariff_versions)


async def test_a_session_across_the_change_is_priced_old_then_new(db: Database) -> None:
    await _replace(db)
    start = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
    await seed_ended_session(db, "AMS-01-1", start, 60, "10", uid="midnight")
    assert await rate_pending(db, ()) == 1
    cdr = await _cdr(db, "midnight")
    # 5 kWh x 0.25 before midnight UTC + 5 kWh x 0.40 after = 1.25 + 2.00
    assert cdr.total_cost_excl_vat == Decimal("3.25")
    assert [p["tariff_id"] for p in cdr.data["charging_periods"]] == ["OLD", "NEW"]
    assert [t["id"] for t in cdr.data["tariffs"]] == ["OLD", "NEW"]
    assert [v["tariff_id"] for v in cdr.tariff_versions] == ["OLD", "NEW"]


async def test_the_quote_answers_the_new_price(db: Database) -> None:
    await _replace(db)
    settings = load_settings(database_url=db.url, http_host="127.0.0.1", http_port=0, _env_file=None)
    hub = RunningHub(settings, components=[PricingComponent(interval=3600)])
    await hub.start()
    try:
        async with httpx.AsyncClient(base_url=hub.hub.endpoints["http"], timeout=60.0) as client:
            r = await client.post(
                "/api/tariffs/quote",
                json={
                    "location_id": "AMS-CENTRAAL",
                    "planned_kwh": "20",
                    "duration_minutes": 60,
                    "start": "2026-07-02T12:00:00Z",
                },
            )
    finally:
        await hub.stop()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["quote"]["total_cost"]["excl_vat"] == "8.00"  # 20 kWh x 0.40
    assert [t["tariff_id"] for t in body["explanation"]["tariffs_used"]] == ["NEW"]


@pytest.mark.clock("2026-07-02T12:00:00Z")
async def test_the_live_price_page_shows_the_new_price(db: Database) -> None:
    await _replace(db)
    async with db.session() as s:
        loc = await s.scalar(select(Location).where(Location.ocpi_id == "AMS-CENTRAAL"))
        assert loc is not None
        page = await live_price(s, loc.id, "EUR")
    assert page is not None
    assert [(q.error, q.total_excl) for q in page.quotes] == [(None, "8.00")]  # 20 kWh x 0.40, no error
    assert page.quotes[0].tariff_id == "NEW"


async def test_tariffs_typed_for_other_sessions_do_not_replace_the_regular_one(db: Database) -> None:
    await _replace(db)
    adhoc = {**_tariff("ADHOC", "0.99", start_date_time="2026-07-02T00:00:00Z"), "type": "AD_HOC_PAYMENT"}
    async with db.session() as s:
        row, _ = await prov.import_tariff(s, adhoc)
        row.created_at = PUBLISHED
        loc = await s.scalar(select(Location).where(Location.ocpi_id == "AMS-CENTRAAL"))
        assert loc is not None
        both = await versions_for_connector(s, loc.cpo_id, ["OLD", "NEW", "ADHOC"])
        only = await versions_for_connector(s, loc.cpo_id, ["ADHOC"])
        none = await versions_for_connector(s, loc.cpo_id, ["MISSING"])
    assert [v.tariff_id for v in both] == ["OLD", "NEW"]
    assert [v.tariff_id for v in only] == ["ADHOC"]
    assert none == []  # the demo CPO has no DEFAULT tariff
