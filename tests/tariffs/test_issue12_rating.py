"""Issue 12, the rating half: late data corrects money (M4), implausible sessions are held (M8), the price
lock (T8). Against the real database (SQLite, and PostgreSQL with ``EVHUB_TEST_DATABASE_URL``), no mocks.

The demo tariff AMS-TOD at AMS-01-1 (22 kW) costs 0.50 flat + 0.39/kWh in the Amsterdam day (both excl. VAT).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from kernel.clock import CLOCK
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Connector, MeterValue, OutboxMessage, PricingState
from kernel.plausibility import CLOCK_SUSPECT, EARLIEST, Limits, plausibility
from tariffs.rating import rate_pending
from tests.conftest import TEST_CLOCK_START
from tests.world.demo_network import seed_pricing_network
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


async def test_pending_waits_for_price_after(db: Database) -> None:
    """M4: a PENDING session whose ``price_after`` is in the future is not priced until the clock passes it
    (the gateway's grace for late data); ``now`` can also be passed in."""
    await seed_pricing_network(db)
    sid = await seed_ended_session(db, "AMS-01-1", T0, 60, "10")
    after = TEST_CLOCK_START + timedelta(minutes=10)
    await _set(db, sid, price_after=after)
    assert await rate_pending(db, ()) == 0
    assert await rate_pending(db, (), now=after - timedelta(seconds=1)) == 0
    assert (await _session(db, sid)).pricing_state == PricingState.PENDING and await _cdrs(db) == []
    CLOCK.pin(after)
    assert await rate_pending(db, ()) == 1
    assert (await _session(db, sid)).pricing_state == PricingState.PRICED and len(await _cdrs(db)) == 1


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
    """M8: a session flagged CLOCK_SUSPECT by the gateway is held; so is one whose end lies more than
    clock_skew after the moment the hub received it (``last_updated``), whenever rating runs."""
    await seed_pricing_network(db)
    flagged = await seed_ended_session(db, "AMS-01-1", T0, 60, "3")
    await _set(db, flagged, flags=[CLOCK_SUSPECT])
    ahead = await seed_ended_session(db, "AMS-01-2", T0, 60, "3", uid="ahead")
    await _set(db, ahead, last_updated=T0 + timedelta(minutes=50))  # received 10 min before its end
    CLOCK.pin(TEST_CLOCK_START + timedelta(days=1))
    assert await rate_pending(db, ()) == 0
    for sid, word in ((flagged, CLOCK_SUSPECT), (ahead, "future")):
        held = await _session(db, sid)
        assert held.pricing_state == PricingState.HELD and word in (held.review_reason or "")
