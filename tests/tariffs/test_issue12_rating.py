"""Issue 12, the rating half: late data corrects money (M4), implausible sessions are held (M8), the price
lock (T8). Against the real database (SQLite, and PostgreSQL with ``EVHUB_TEST_DATABASE_URL``), no mocks.

The demo tariff AMS-TOD at AMS-01-1 (22 kW) costs 0.50 flat + 0.39/kWh in the Amsterdam day (both excl. VAT).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from kernel.clock import CLOCK
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, MeterValue, PricingState
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
