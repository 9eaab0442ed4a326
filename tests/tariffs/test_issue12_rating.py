"""Issue 12, the rating half: late data corrects money (M4), implausible sessions are held (M8), the price
lock (T8). Against the real database (SQLite, and PostgreSQL with ``EVHUB_TEST_DATABASE_URL``), no mocks.

The demo tariff AMS-TOD at AMS-01-1 (22 kW) costs 0.50 flat + 0.39/kWh in the Amsterdam day (both excl. VAT).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from evhub import provisioning as prov
from evhub.app import RunningHub
from kernel.clock import CLOCK
from kernel.db.engine import Database
from kernel.models import (
    Cdr,
    ChargingSession,
    Connector,
    MeterValue,
    OutboxMessage,
    PartyRole,
    PricingState,
    Reservation,
    ReservationStatus,
    TariffPolicy,
)
from kernel.plausibility import CLOCK_SUSPECT, EARLIEST, Limits, plausibility
from kernel.settings import load_settings
from kernel.timeutil import format_rfc3339
from tariffs.component import PricingComponent
from tariffs.rating import rate_pending
from tests.conftest import TEST_CLOCK_START
from tests.world.demo_network import demo_json, seed_pricing_network, seed_tokens
from tests.world.sessions import seed_ended_session

T0 = TEST_CLOCK_START - timedelta(hours=2)  # 08:00 UTC = 10:00 in Amsterdam: the day price
DAY_FLAT, DAY_KWH = Decimal("0.50"), Decimal("0.39")


async def _cdrs(db: Database) -> list[Cdr]:
    async with db.session() as s:
        return list((await s.scalars(select(Cdr).order_by(Cdr.id))).all())


async def _session(db: Database, sid: int) -> ChargingSession:
    async with db.session() as s:
        row = await s.get(ChargingSession, sid)
        assert row is not None
        return row


async def _set(db: Database, sid: int, **values: object) -> None:
    async with db.session() as s:
        row = await s.get(ChargingSession, sid)
        assert row is not None
        for key, value in values.items():
            setattr(row, key, value)


def _current(cdrs: list[Cdr]) -> list[Cdr]:
    credited = {c.credit_of for c in cdrs if c.is_credit}
    return [c for c in cdrs if not c.is_credit and c.id not in credited]


# ---- M4: pending after its grace, REPRICE


async def test_reprice_with_changed_meter_values_credits_and_reissues(db: Database) -> None:
    """M4: a session priced at X whose meter values then changed (state REPRICE, set by the gateway) gets one
    credit of X and one revision 1 at the new amount, in one rating pass; exactly one current CDR; the hooks
    queue the credit and the new revision."""
    await seed_pricing_network(db)
    sid = await seed_ended_session(db, "AMS-01-1", T0, 60, "10")
    assert await rate_pending(db, ()) == 1
    (original,) = await _cdrs(db)
    assert original.total_cost_excl_vat == DAY_FLAT + 10 * DAY_KWH
    async with db.session() as s:  # late meter values: 12 kWh, not 10
        for row in (await s.scalars(select(MeterValue).where(MeterValue.session_id == sid))).all():
            row.value = Decimal(1000) + (row.value - Decimal(1000)) * Decimal("1.2")
        session = await s.get(ChargingSession, sid)
        assert session is not None
        session.energy_wh, session.meter_stop_wh = Decimal(12000), Decimal(13000)
        session.pricing_state = PricingState.REPRICE
    told: list[tuple[str, bool, int]] = []

    async def hook(_s: object, cdr: Cdr) -> None:
        told.append((cdr.cdr_uid, cdr.is_credit, cdr.revision))

    assert await rate_pending(db, [hook]) == 1
    cdrs = await _cdrs(db)
    assert len(cdrs) == 3
    credit, fresh = cdrs[1], cdrs[2]
    assert credit.is_credit and credit.credit_of == original.id
    assert credit.total_cost_excl_vat == -original.total_cost_excl_vat
    assert credit.data["credit_reference_id"] == original.cdr_uid
    assert fresh.revision == 1 and not fresh.is_credit
    assert fresh.total_cost_excl_vat == DAY_FLAT + 12 * DAY_KWH
    assert fresh.total_energy_kwh == Decimal(12)
    assert _current(cdrs) == [fresh]
    assert told == [(credit.cdr_uid, True, 0), (fresh.cdr_uid, False, 1)]
    assert (await _session(db, sid)).pricing_state == PricingState.PRICED
    assert await rate_pending(db, [hook]) == 0 and len(await _cdrs(db)) == 3  # nothing more to do


async def test_reprice_without_change_goes_back_to_priced_without_a_cdr(db: Database) -> None:
    """M4: REPRICE whose re-derived CDR has the same content as the current revision -> PRICED, no new CDR,
    no hook call; a second correction after that credits revision 1, not the original."""
    await seed_pricing_network(db)
    sid = await seed_ended_session(db, "AMS-01-1", T0, 60, "10")
    assert await rate_pending(db, ()) == 1
    await _set(db, sid, pricing_state=PricingState.REPRICE)
    told: list[str] = []

    async def hook(_s: object, cdr: Cdr) -> None:
        told.append(cdr.cdr_uid)

    assert await rate_pending(db, [hook]) == 0
    assert len(await _cdrs(db)) == 1 and told == []
    assert (await _session(db, sid)).pricing_state == PricingState.PRICED
    # Two changes in a row: each credits the then-current revision.
    await _set(db, sid, end_time=T0 + timedelta(minutes=61), pricing_state=PricingState.REPRICE)
    assert await rate_pending(db, [hook]) == 1
    await _set(db, sid, energy_wh=Decimal(11000), pricing_state=PricingState.REPRICE)
    assert await rate_pending(db, [hook]) == 1
    cdrs = await _cdrs(db)
    assert [(c.revision, c.is_credit) for c in cdrs] == [
        (0, False),
        (0, True),
        (1, False),
        (1, True),
        (2, False),
    ]
    assert cdrs[3].credit_of == cdrs[2].id
    assert _current(cdrs) == [cdrs[4]] and cdrs[4].total_cost_excl_vat == DAY_FLAT + 11 * DAY_KWH
    assert len(told) == 4


async def test_reprice_when_late_data_names_another_token_reissues_to_it(db: Database) -> None:
    """M4: the money is unchanged but a late start named the token that really charged (another eMSP
    contract): the CDR is corrected (credit of the original, revision 1 with the new ``cdr_token``), never
    left with the wrong payer."""
    await seed_pricing_network(db)
    tokens = await seed_tokens(db, "TOKEN-2")
    sid = await seed_ended_session(db, "AMS-01-1", T0, 60, "10")
    assert await rate_pending(db, ()) == 1
    await _set(db, sid, token_id=tokens["TOKEN-2"], pricing_state=PricingState.REPRICE)
    assert await rate_pending(db, ()) == 1
    original, credit, fresh = await _cdrs(db)
    assert credit.is_credit and credit.data["cdr_token"]["uid"] == "TOKEN-1"
    assert fresh.revision == 1 and fresh.data["cdr_token"]["uid"] == "TOKEN-2"
    assert fresh.total_cost_excl_vat == original.total_cost_excl_vat


async def test_pending_waits_for_price_after(db: Database) -> None:
    """M4: a PENDING session whose ``price_after`` is in the future is not priced until the clock passes it
    (the gateway's grace for late data); ``now`` can also be passed in; a REPRICE session waits likewise."""
    await seed_pricing_network(db)
    sid = await seed_ended_session(db, "AMS-01-1", T0, 60, "10")
    after, after_gap = TEST_CLOCK_START + timedelta(minutes=10), timedelta(minutes=10)
    await _set(db, sid, price_after=after)
    assert await rate_pending(db, ()) == 0
    assert await rate_pending(db, (), now=after - timedelta(seconds=1)) == 0
    assert (await _session(db, sid)).pricing_state == PricingState.PENDING and await _cdrs(db) == []
    CLOCK.pin(after)
    assert await rate_pending(db, ()) == 1
    assert (await _session(db, sid)).pricing_state == PricingState.PRICED and len(await _cdrs(db)) == 1
    # A session to re-price waits for its price_after too (more late data may follow: one correction).
    await _set(
        db, sid, energy_wh=Decimal(11000), pricing_state=PricingState.REPRICE, price_after=after + after_gap
    )
    assert await rate_pending(db, ()) == 0 and len(await _cdrs(db)) == 1
    assert await rate_pending(db, (), now=after + after_gap) == 1 and len(await _cdrs(db)) == 3


# ---- M8: implausible sessions are held

NOW = datetime(2026, 6, 16, 10, 0, tzinfo=UTC)
LIMITS = Limits()


def test_plausibility_accepts_an_ordinary_session() -> None:
    """M8: 10 kWh in an hour on a 22 kW connector, ended before now: no reason."""
    start = NOW - timedelta(hours=2)
    assert plausibility(start, start + timedelta(hours=1), Decimal(10000), 22000, NOW, LIMITS) == []
    # The limit: 22 kW x 1 h x 1.1 + 500 Wh = 24 700 Wh is still plausible, a Wh more is not.
    assert plausibility(start, start + timedelta(hours=1), Decimal(24700), 22000, NOW, LIMITS) == []
    assert plausibility(start, start + timedelta(hours=1), Decimal(24701), 22000, NOW, LIMITS) != []
    # Unknown connector power: the energy check is skipped.
    assert plausibility(start, start + timedelta(minutes=1), Decimal(90000), None, NOW, LIMITS) == []


def test_plausibility_names_every_reason() -> None:
    """M8: span > max_session_span, start/end after now + clock_skew, start before 2010, end before start,
    negative energy, energy beyond max power x duration x 1.1 + 500 Wh, flag CLOCK_SUSPECT: each a reason."""
    day = timedelta(days=1)
    assert "span" in plausibility(NOW - 9 * day, NOW - day, Decimal(1), None, NOW, LIMITS)[0]
    assert plausibility(NOW - 7 * day, NOW, Decimal(1), None, NOW, LIMITS) == []  # 7 days is allowed
    future = plausibility(NOW, NOW + timedelta(minutes=6), Decimal(1), None, NOW, LIMITS)
    assert len(future) == 1 and future[0].startswith("end") and "future" in future[0]
    assert plausibility(NOW, NOW + timedelta(minutes=5), Decimal(1), None, NOW, LIMITS) == []  # the skew
    assert len(plausibility(NOW + day, NOW + day, Decimal(1), None, NOW, LIMITS)) == 2  # start and end
    early = plausibility(EARLIEST - day, EARLIEST, Decimal(1), None, NOW, LIMITS)
    assert len(early) == 1 and "before 2010-01-01" in early[0]
    backwards = plausibility(NOW - day, NOW - 2 * day, Decimal(1), 22000, NOW, LIMITS)
    assert len(backwards) == 1 and "before start" in backwards[0]
    negative = plausibility(NOW - day, NOW - day / 2, Decimal(-1), 22000, NOW, LIMITS)
    assert len(negative) == 1 and "negative" in negative[0]
    power = plausibility(NOW - day, NOW - day + timedelta(minutes=1), Decimal(3000), 11000, NOW, LIMITS)
    assert len(power) == 1 and "max_electric_power 11000 W" in power[0]
    flagged = plausibility(NOW - day, NOW - day / 2, Decimal(1), None, NOW, LIMITS, ["X", CLOCK_SUSPECT])
    assert len(flagged) == 1 and CLOCK_SUSPECT in flagged[0]
    tight = Limits(max_span=timedelta(hours=1), clock_skew=timedelta(0))
    assert len(plausibility(NOW - day, NOW + timedelta(seconds=1), Decimal(1), None, NOW, tight)) == 2


async def _outbox(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def test_a_50_year_session_is_held_never_billed_nor_pushed(db: Database) -> None:
    """M8: an ended session 1976-01-01..2026-01-01 with 3 kWh (a charger clock reset) is HELD with a reason
    naming the span (and the start before 2010), no CDR, no hook run, no outbox row; rating it again keeps it
    held; released with corrected times (PENDING again) it becomes one CDR."""
    await seed_pricing_network(db)
    sid = await seed_ended_session(db, "AMS-01-1", T0, 60, "3")
    await _set(
        db,
        sid,
        start_time=datetime(1976, 1, 1, tzinfo=UTC),
        end_time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    told: list[str] = []

    async def hook(_s: object, cdr: Cdr) -> None:
        told.append(cdr.cdr_uid)

    assert await rate_pending(db, [hook]) == 0
    held = await _session(db, sid)
    assert held.pricing_state == PricingState.HELD
    assert held.review_reason is not None and "span" in held.review_reason and "1976" in held.review_reason
    assert await _cdrs(db) == [] and told == [] and await _outbox(db) == 0
    assert await rate_pending(db, [hook]) == 0 and await _cdrs(db) == []  # held is not claimed again
    # The operator's release: corrected times, back to pending.
    await _set(
        db, sid, start_time=T0, end_time=T0 + timedelta(minutes=60), pricing_state=PricingState.PENDING
    )
    assert await rate_pending(db, [hook]) == 1
    (cdr,) = await _cdrs(db)
    assert cdr.total_cost_excl_vat == DAY_FLAT + 3 * DAY_KWH and told == [cdr.cdr_uid]
    released = await _session(db, sid)
    assert released.pricing_state == PricingState.PRICED and released.review_reason is None


async def test_more_energy_than_the_connector_can_deliver_is_held(db: Database) -> None:
    """M8: 3 kWh in 1 minute on an 11 kW connector (max_electric_power 11000 W: at most 702 Wh) is HELD,
    the reason naming the energy and the connector's power; no CDR."""
    await seed_pricing_network(db)
    sid = await seed_ended_session(db, "AMS-01-1", T0, 1, "3")
    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        assert session is not None and session.connector_pk is not None
        connector = await s.get(Connector, session.connector_pk)
        assert connector is not None
        connector.max_electric_power = 11000
    assert await rate_pending(db, ()) == 0
    held = await _session(db, sid)
    assert held.pricing_state == PricingState.HELD and held.review_reason is not None
    assert "energy 3000 Wh" in held.review_reason and "11000 W" in held.review_reason
    assert await _cdrs(db) == []


async def test_a_clock_suspect_session_and_a_future_end_are_held(db: Database) -> None:
    """M8: a session flagged CLOCK_SUSPECT by the gateway is held; so is one that ends more than clock_skew
    after now (the charger's clock is ahead), even when its ``last_updated`` is earlier still."""
    await seed_pricing_network(db)
    flagged = await seed_ended_session(db, "AMS-01-1", T0, 60, "3")
    await _set(db, flagged, flags=[CLOCK_SUSPECT])
    ahead = await seed_ended_session(db, "AMS-01-2", TEST_CLOCK_START, 10, "1", uid="ahead")
    await _set(db, ahead, last_updated=TEST_CLOCK_START)  # received now, stamped to end at 10:10
    assert await rate_pending(db, ()) == 0
    for sid, word in ((flagged, CLOCK_SUSPECT), (ahead, "end 2026-06-16T10:10:00Z in the future")):
        held = await _session(db, sid)
        assert held.pricing_state == PricingState.HELD and word in (held.review_reason or "")
    # The same session once the clock has passed its end (a rating pass later, say) is plausible.
    await _set(db, ahead, pricing_state=PricingState.PENDING)
    CLOCK.pin(TEST_CLOCK_START + timedelta(minutes=6))
    assert await rate_pending(db, ()) == 1


# ---- T8: the price lock

LOCK_START = TEST_CLOCK_START + timedelta(hours=1)  # 11:00 UTC = 13:00 in Amsterdam: the day price
V2_KWH = Decimal("0.49")
UNLOCKED = DAY_FLAT + 5 * DAY_KWH + 5 * V2_KWH  # 10 kWh over an hour, v2 from its middle
LOCKED = DAY_FLAT + 10 * DAY_KWH


async def _import_v2_from_mid_session(db: Database) -> None:
    """AMS-TOD version 2 (day energy 0.49), valid from 30 minutes into the session (imported before it)."""
    tariff = demo_json("tariffs.json")[0]
    tariff["elements"][2]["price_components"][0]["price"] = float(V2_KWH)
    tariff["start_date_time"] = format_rfc3339(LOCK_START + timedelta(minutes=30))
    tariff["last_updated"] = format_rfc3339(TEST_CLOCK_START)
    async with db.session() as s:
        row, created = await prov.import_tariff(s, tariff)
        assert created and row.version == 2


async def _policy(db: Database, price_lock: bool, tariff_id: str | None = None) -> None:
    async with db.session() as s:
        cpo = await prov.find_party(s, "NL*AMP", PartyRole.CPO)
        s.add(TariffPolicy(cpo_id=cpo.id, tariff_id=tariff_id, price_lock=price_lock))


async def _quote(db: Database) -> Decimal:
    """POST /api/tariffs/quote for the same planned session at AMS-01-1, over real HTTP."""
    settings = load_settings(database_url=db.url, http_host="127.0.0.1", http_port=0, _env_file=None)
    hub = RunningHub(settings, components=[PricingComponent(interval=3600)])
    await hub.start()
    try:
        async with httpx.AsyncClient(base_url=hub.hub.endpoints["http"], timeout=60.0) as client:
            r = await client.post(
                "/api/tariffs/quote",
                json={
                    "location_id": "AMS-CENTRAAL",
                    "evse_uid": "AMS-01-1",
                    "planned_kwh": "10",
                    "duration_minutes": 60,
                    "start": format_rfc3339(LOCK_START),
                },
            )
            assert r.status_code == 200, r.text
            return Decimal(r.json()["quote"]["total_cost"]["excl_vat"])
    finally:
        await hub.stop()


async def _rated_total(db: Database) -> Cdr:
    await seed_ended_session(db, "AMS-01-1", LOCK_START, 60, "10", uid="locked?")
    assert await rate_pending(db, ()) == 1
    (cdr,) = await _cdrs(db)
    return cdr


async def test_without_a_price_lock_the_session_switches_to_the_newer_version(db: Database) -> None:
    """T8: no policy (off): a session across v2's start pays v1 for its first half and v2 for its second;
    the quote for the same plan says the same."""
    await seed_pricing_network(db)
    await _import_v2_from_mid_session(db)
    cdr = await _rated_total(db)
    assert cdr.total_cost_excl_vat == UNLOCKED
    assert len(cdr.tariff_versions) == 2
    assert await _quote(db) == UNLOCKED


@pytest.mark.parametrize("scope", ["cpo", "tariff"])
async def test_with_a_price_lock_the_version_valid_at_the_start_prices_the_whole_session(
    db: Database, scope: str
) -> None:
    """T8: the CPO's default policy (or the tariff's own row) says price_lock: the whole session is priced with
    v1, the version valid at its start (OCPI 2.2.1: "a driver accepts the tariff which is valid when they
    start their charging session"); the CDR lists only v1; the quote follows the same policy."""
    await seed_pricing_network(db)
    await _import_v2_from_mid_session(db)
    await _policy(db, True, None if scope == "cpo" else "AMS-TOD")
    cdr = await _rated_total(db)
    assert cdr.total_cost_excl_vat == LOCKED
    assert len(cdr.tariff_versions) == 1 and len(cdr.data["tariffs"]) == 1
    assert await _quote(db) == LOCKED


async def test_the_tariffs_own_policy_overrides_the_cpo_default(db: Database) -> None:
    """T8: CPO default lock on, a row for AMS-TOD with lock off: AMS-TOD sessions are not locked."""
    await seed_pricing_network(db)
    await _import_v2_from_mid_session(db)
    await _policy(db, True)
    await _policy(db, False, "AMS-TOD")
    assert (await _rated_total(db)).total_cost_excl_vat == UNLOCKED
    assert await _quote(db) == UNLOCKED


async def test_a_locked_version_that_ends_mid_session_still_prices_its_end(db: Database) -> None:
    """T8: with the lock, v1 prices the whole session even when v1 itself ends mid-session (without the lock
    the rest would be priced by whatever replaces it, here v2)."""
    await seed_pricing_network(db)
    await _import_v2_from_mid_session(db)
    tariff = demo_json("tariffs.json")[0]
    tariff["end_date_time"] = format_rfc3339(LOCK_START + timedelta(minutes=30))
    tariff["last_updated"] = format_rfc3339(TEST_CLOCK_START)
    async with db.session() as s:
        row, created = await prov.import_tariff(s, tariff)
        assert created and row.version == 3
        v3 = row.id
    # v3 = v1's prices ending at 11:30, valid from its import (before the session): at the start v3 applies.
    await seed_ended_session(db, "AMS-01-2", LOCK_START, 60, "10", uid="unlocked")
    assert await rate_pending(db, ()) == 1
    (unlocked,) = await _cdrs(db)
    assert unlocked.total_cost_excl_vat == UNLOCKED  # v3 until 11:30, then v2
    await _policy(db, True)
    await seed_ended_session(db, "AMS-01-1", LOCK_START, 60, "10", uid="locked")
    assert await rate_pending(db, ()) == 1
    cdr = (await _cdrs(db))[-1]
    assert cdr.total_cost_excl_vat == LOCKED
    assert [v["row_ids"] for v in cdr.tariff_versions] == [[v3]]
    applied = cdr.data["tariffs"][0]  # as applied: the tariff of the whole CDR, no validity window
    assert "end_date_time" not in applied and "start_date_time" not in applied


async def test_a_locked_session_after_a_reservation_is_priced_whole(db: Database) -> None:
    """T8 with T7: the session started on a reservation made before the version valid at its start: with the
    lock that version is the tariff of the whole CDR, reservation time included (no instant of the CDR
    without a version, the session is priced, not failed)."""
    await seed_pricing_network(db)
    tariff = demo_json("tariffs.json")[0]
    tariff["elements"][2]["price_components"][0]["price"] = float(V2_KWH)
    tariff["start_date_time"] = format_rfc3339(LOCK_START - timedelta(minutes=10))
    tariff["last_updated"] = format_rfc3339(TEST_CLOCK_START)
    async with db.session() as s:
        assert (await prov.import_tariff(s, tariff))[0].version == 2
    await _policy(db, True)
    sid = await seed_ended_session(db, "AMS-01-1", LOCK_START, 60, "10")
    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        assert session is not None
        session.data = {"reservation_id": 5}
        s.add(
            Reservation(
                reservation_id="R-5",
                ocpp_reservation_id=5,
                cpo_id=session.cpo_id,
                charge_point_id=session.charge_point_id,
                status=ReservationStatus.ACTIVE,
                made_at=LOCK_START - timedelta(minutes=20),
                expiry=LOCK_START + timedelta(minutes=30),
                data={},
            )
        )
    assert await rate_pending(db, ()) == 1
    (cdr,) = await _cdrs(db)
    assert (await _session(db, sid)).pricing_state == PricingState.PRICED
    assert cdr.start_date_time == LOCK_START - timedelta(minutes=20)  # the reservation's start
    assert cdr.total_cost_excl_vat == DAY_FLAT + 10 * V2_KWH  # v2, valid at the session start, throughout


def _cli(db: Database, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    from evhub.cli import app

    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    return CliRunner().invoke(app, list(args))


async def test_the_policy_cli_sets_lists_and_refuses_an_unknown_cpo(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T8: ``evhub tariffs policy set --cpo NL*AMP [--tariff ID] --price-lock/--no-price-lock`` stores the
    policy (a second set changes the row, never adds one), ``policy list`` shows it (``--json`` too), an
    unknown CPO is one line on stderr and exit 1; rating then follows the stored policy."""
    await seed_pricing_network(db)
    await _import_v2_from_mid_session(db)

    async def cli(*args: str) -> Result:
        return await asyncio.to_thread(_cli, db, monkeypatch, *args)

    ok = await cli("tariffs", "policy", "set", "--cpo", "NL*AMP", "--no-price-lock")
    assert ok.exit_code == 0 and "price lock off for NL*AMP" in ok.output, ok.output
    ok = await cli("tariffs", "policy", "set", "--cpo", "NL*AMP", "--price-lock")
    assert ok.exit_code == 0 and "price lock on for NL*AMP" in ok.output, ok.output
    ok = await cli("tariffs", "policy", "set", "--cpo", "NL*AMP", "--tariff", "AMS-TOD", "--price-lock")
    assert ok.exit_code == 0 and "AMS-TOD" in ok.output and "note" not in ok.output, ok.output
    listed = await cli("tariffs", "policy", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert '"tariff_id": null' in listed.output and '"tariff_id": "AMS-TOD"' in listed.output
    async with db.session() as s:
        assert int(await s.scalar(select(func.count()).select_from(TariffPolicy)) or 0) == 2
    table = await cli("tariffs", "policy", "list")
    assert table.exit_code == 0 and "(default)" in table.output and "on" in table.output
    unknown = await cli("tariffs", "policy", "set", "--cpo", "NL*NOPE", "--price-lock")
    assert unknown.exit_code == 1
    lines = [line for line in unknown.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "NL*NOPE" in lines[0], unknown.stderr
    missing_flag = await cli("tariffs", "policy", "set", "--cpo", "NL*AMP")
    assert missing_flag.exit_code != 0
    assert (await _rated_total(db)).total_cost_excl_vat == LOCKED


async def test_tariffs_rerate_holds_with_the_configured_limits(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M8: ``evhub tariffs rerate`` judges plausibility with the configured limits (EVHUB_MAX_SESSION_SPAN),
    not only the defaults: an hour-long session is held when the span allowed is 30 minutes."""
    await seed_pricing_network(db)
    sid = await seed_ended_session(db, "AMS-01-1", T0, 60, "10")
    monkeypatch.setenv("EVHUB_MAX_SESSION_SPAN", "1800")
    result = await asyncio.to_thread(_cli, db, monkeypatch, "tariffs", "rerate")
    assert result.exit_code == 0, result.output
    held = await _session(db, sid)
    assert held.pricing_state == PricingState.HELD and "max_session_span" in (held.review_reason or "")
    assert await _cdrs(db) == []


async def test_a_session_released_as_it_is_is_billed_without_the_checks(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M8: an operator who reviewed a held session and found it right (a real 3 kWh in a minute on a
    connector whose stored power is understated) releases it with ``evhub sessions release UID --accept``:
    pricing bills it as it is (one CDR), while a plain release of the same session is held again."""
    await seed_pricing_network(db)
    sid = await seed_ended_session(db, "AMS-01-1", T0, 1, "3")
    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        assert session is not None and session.connector_pk is not None
        connector = await s.get(Connector, session.connector_pk)
        assert connector is not None
        connector.max_electric_power = 11000
        uid = session.session_uid
    assert await rate_pending(db, ()) == 0
    plain = await asyncio.to_thread(_cli, db, monkeypatch, "sessions", "release", uid)
    assert plain.exit_code == 0, plain.output
    assert await rate_pending(db, ()) == 0 and (await _session(db, sid)).pricing_state == PricingState.HELD
    accepted = await asyncio.to_thread(_cli, db, monkeypatch, "sessions", "release", uid, "--accept")
    assert accepted.exit_code == 0 and "pending pricing as it is" in accepted.output, accepted.output
    assert await rate_pending(db, ()) == 1
    (cdr,) = await _cdrs(db)
    assert cdr.total_energy_kwh == Decimal(3)
    assert (await _session(db, sid)).data["released"]["accepted"] is True
