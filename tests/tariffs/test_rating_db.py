"""Rating against the real database: ended sessions become exactly one CDR; corrections; grid-load versions;
quotes over real HTTP. The prices asserted here are computed by hand from the demo tariffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from evhub import provisioning as prov
from evhub.app import RunningHub
from kernel.db.engine import Database
from kernel.models import (
    Cdr,
    ChargingSession,
    Connector,
    MeterValue,
    PricingState,
)
from kernel.settings import load_settings
from tariffs.component import PricingComponent
from tariffs.dynamic import attach_rules, record_load
from tariffs.rating import correct_cdr, rate_pending
from tests.world.demo_network import demo_json, seed_pricing_network
from tests.world.sessions import seed_ended_session


async def _count(db: Database, model: type) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)))


async def test_one_cdr_per_session_priced_by_time_of_day(db: Database) -> None:
    await seed_pricing_network(db)
    # 22:30-23:30 Amsterdam time (UTC+1 in November): 30 min at day price, 30 min at night price, 10 kWh.
    start = datetime(2026, 11, 10, 21, 30, tzinfo=UTC)
    sid = await seed_ended_session(db, "AMS-01-1", start, 60, "10")
    calls: list[str] = []

    async def hook(_s, cdr: Cdr) -> None:
        calls.append(cdr.cdr_uid)

    assert await rate_pending(db, [hook]) == 1
    assert await rate_pending(db, [hook]) == 0  # nothing pending any more
    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        session.pricing_state = PricingState.PENDING  # a replayed hand-off
    assert await rate_pending(db, [hook]) == 0
    assert await _count(db, Cdr) == 1 and len(calls) == 1
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr))
        assert (await s.get(ChargingSession, sid)).pricing_state == PricingState.PRICED
    # 5 kWh x 0.39 + 5 kWh x 0.29 + 0.50 flat = 1.95 + 1.45 + 0.50 = 3.90 excl. VAT; 21 % VAT -> 4.72 incl.
    assert cdr.currency == "EUR"
    assert cdr.total_cost_excl_vat == Decimal("3.90")
    assert cdr.total_cost_incl_vat == Decimal("4.72")
    assert cdr.total_energy_kwh == Decimal("10")
    assert cdr.data["session_id"] == "sess-1" and cdr.data["cdr_location"]["evse_uid"] == "AMS-01-1"
    assert cdr.data["cdr_token"]["uid"] == "TOKEN-1"
    assert {line["dimension"] for line in cdr.explanation["lines"]} >= {"ENERGY", "FLAT"}
    assert (
        sum(Decimal(line["amount_excl_vat"]) for line in cdr.explanation["lines"]) == cdr.total_cost_excl_vat
    )


async def test_parking_and_time_components(db: Database) -> None:
    await seed_pricing_network(db)
    # Amsterdam: charge 40 min (day), then 25 min parked -> parking 6.00/h in 5-min steps: 25 min = 2.50.
    start = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    await seed_ended_session(db, "AMS-01-2", start, 65, "8", uid="park", charge_minutes=40)
    # London: 30 min, 6 kWh: 6 x 0.45 + 0.5 h x 3.00 = 2.70 + 1.50 = 4.20 GBP; VAT 20 % -> 5.04.
    await seed_ended_session(db, "LDN-01-1", start, 30, "6", uid="ldn")
    assert await rate_pending(db, ()) == 2
    async with db.session() as s:
        cdrs = {c.data["session_id"]: c for c in (await s.scalars(select(Cdr))).all()}
    assert cdrs["park"].total_cost_excl_vat == Decimal("0.50") + Decimal("3.12") + Decimal("2.50")
    assert cdrs["ldn"].currency == "GBP"
    assert (cdrs["ldn"].total_cost_excl_vat, cdrs["ldn"].total_cost_incl_vat) == (
        Decimal("4.20"),
        Decimal("5.04"),
    )


async def test_session_without_tariff_fails_visibly_then_rerates(db: Database) -> None:
    await seed_pricing_network(db)
    async with db.session() as s:
        for c in (await s.scalars(select(Connector))).all():
            c.tariff_ids = ["MISSING"]
    sid = await seed_ended_session(db, "AMS-01-1", datetime(2026, 11, 10, 12, 0, tzinfo=UTC), 10, "1")
    assert await rate_pending(db, ()) == 0
    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        assert session.pricing_state == PricingState.FAILED and "MISSING" in session.pricing_error
    assert await _count(db, Cdr) == 0


async def test_correction_is_a_credit_plus_a_new_cdr(db: Database) -> None:
    await seed_pricing_network(db)
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 11, 10, 12, 0, tzinfo=UTC), 60, "10")
    await rate_pending(db, ())
    async with db.session() as s:
        original = await s.scalar(select(Cdr))
        tariff = demo_json("tariffs.json")[0]
    tariff["elements"][2]["price_components"][0]["price"] = 0.49
    tariff["last_updated"] = "2026-11-11T00:00:00Z"
    tariff["start_date_time"] = "2026-11-01T00:00:00Z"  # the operator's fix, valid for the corrected session
    async with db.session() as s:
        row, created = await prov.import_tariff(s, tariff)
        assert created and row.version == 2
    credit, fresh = await correct_cdr(db, original.cdr_uid, ())
    assert credit.is_credit and credit.total_cost_excl_vat == -original.total_cost_excl_vat
    assert credit.data["credit_reference_id"] == original.cdr_uid and credit.data["credit"] is True
    assert fresh.revision == 1 and fresh.total_cost_excl_vat == Decimal("0.50") + Decimal("4.90")
    async with db.session() as s:
        unchanged = await s.scalar(select(Cdr).where(Cdr.cdr_uid == original.cdr_uid))
    assert unchanged.total_cost_excl_vat == original.total_cost_excl_vat
    with pytest.raises(Exception, match="already credited"):
        await correct_cdr(db, original.cdr_uid, ())


async def test_grid_load_publishes_versions_and_sessions_pay_the_published_price(db: Database) -> None:
    await seed_pricing_network(db)
    rules = demo_json("grid_rules.json")
    async with db.session() as s:
        cpo = await prov.find_party(s, "NL*AMP", prov.PartyRole.CPO)
        await attach_rules(s, "NL-NH", cpo.id, "AMS-TOD", rules, hysteresis=Decimal(5), min_hold_s=1800)
    t0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    assert await record_load(db, "NL-NH", t0, Decimal(50), ()) == []  # no rule applies: no change
    peak = await record_load(db, "NL-NH", t0 + timedelta(minutes=30), Decimal(85), ())
    assert [v.version for v in peak] == [2]
    replayed = await record_load(db, "NL-NH", t0 + timedelta(minutes=30), Decimal(85), ())
    assert replayed == []  # a replayed sample
    # 78 % is within the hysteresis band: the peak price holds. 70 % after the hold: back to base.
    assert await record_load(db, "NL-NH", t0 + timedelta(minutes=45), Decimal(78), ()) == []
    assert (
        await record_load(db, "NL-NH", t0 + timedelta(minutes=50), Decimal(70), ()) == []
    )  # within the 30-min hold
    back = await record_load(db, "NL-NH", t0 + timedelta(minutes=60), Decimal(70), ())
    assert [v.version for v in back] == [3]
    assert (
        await record_load(db, "NL-NH", t0 - timedelta(hours=1), Decimal(99), ()) == []
    )  # late sample: stored only

    # A session from 12:00 to 13:00 UTC, 12 kWh evenly: 6 kWh at 0.39, then 6 kWh at the peak price 0.49.
    await seed_ended_session(db, "AMS-01-1", t0, 60, "12")
    await rate_pending(db, ())
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr))
    assert cdr.total_cost_excl_vat == Decimal("0.50") + Decimal("2.34") + Decimal("2.94")
    assert len(cdr.tariff_versions) == 2


async def test_quote_over_http_matches_engine(db: Database) -> None:
    await seed_pricing_network(db)
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
                    "start": "2026-11-10T12:00:00Z",
                },
            )
            assert r.status_code == 200, r.text
            body = r.json()
            # 20 kWh x 0.39 = 7.80 (incl. 21 % VAT 9.438 -> 9.44) + flat 0.50 (0.605 -> 0.61): each line is
            # rounded once, so the total incl. VAT is 10.05 (not round(8.30 x 1.21) = 10.04).
            assert body["quote"]["total_cost"] == {"excl_vat": "8.30", "incl_vat": "10.05"}
            assert body["explanation"]["tariffs_used"][0]["tariff_id"] == "AMS-TOD"
            bad = await client.post(
                "/api/tariffs/quote", json={"location_id": "NOPE", "planned_kwh": 1, "duration_minutes": 5}
            )
            assert bad.status_code == 404 and "NOPE" in bad.text
            neg = await client.post(
                "/api/tariffs/quote",
                json={"location_id": "AMS-CENTRAAL", "planned_kwh": -1, "duration_minutes": 5},
            )
            assert neg.status_code == 422
            grid = await client.post("/api/grid/NL-NH/load", json={"load_percent": "101.5"})
            assert grid.status_code == 422 and "less than or equal to 100" in grid.text
    finally:
        await hub.stop()


def test_meter_samples_reset_rounding_and_final_energy() -> None:
    from tariffs.cdr_builder import meter_samples

    t0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    session = ChargingSession(
        start_time=t0,
        end_time=t0 + timedelta(minutes=4),
        meter_start_wh=Decimal(1000),
        energy_wh=Decimal(2500),
    )

    def mv(minute: int, value: str) -> MeterValue:
        return MeterValue(
            timestamp=t0 + timedelta(minutes=minute),
            value=Decimal(value),
            unit="Wh",
            measurand="Energy.Active.Import.Register",
            phase="",
        )

    # +500.6, then a 0.6 Wh step back (integer rounding), then a reset to 1,000 (+1,000), then +999.4.
    rows = [mv(1, "1500.6"), mv(2, "1500"), mv(3, "1000"), mv(4, "1999.4")]
    samples = meter_samples(rows, session)
    assert [x.energy_wh for x in samples] == [
        Decimal(0),
        Decimal("500.6"),
        Decimal("500.6"),
        Decimal("1500.6"),
        Decimal(2500),
    ]
    assert samples[-1].timestamp == session.end_time
