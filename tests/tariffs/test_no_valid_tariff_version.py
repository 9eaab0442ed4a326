"""T1 (issue #12): a tariff past its end_date_time priced sessions at 0.00 and marked them priced.

Rule: a period with something to bill (energy, charging, parking or reservation time, or the session's FLAT)
at an instant where no tariff version is valid is a :class:`PricingError` naming that instant, never free.
Rating then marks the session FAILED with that reason and makes no CDR. OCPI 2.2.1 Tariff ``end_date_time``:
"The time after which this tariff is no longer valid"; free is explicit (FLAT with price 0.00).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, OutboxMessage, PricingState, TariffVersion
from tariffs.core.charging_periods import charging, parking
from tariffs.core.engine import PricingError, price_session
from tariffs.core.quote import quote
from tariffs.rating import rate_pending
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

from .tariff_helpers import el, mins, pc, tariff

TZ = "Europe/Amsterdam"
ENDED = tariff([el(pc("ENERGY", "0.25"))], end_date_time="2026-06-30T00:00:00Z")
JULY = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_session_after_the_end_is_an_error_naming_the_instant() -> None:
    with pytest.raises(PricingError, match=r"2026-07-01T10:00:00.*T1"):
        price_session(ENDED, [charging(JULY, JULY + mins(60), D(10000))], JULY, JULY + mins(60), TZ)


def test_session_running_past_the_end_is_an_error_at_the_end() -> None:
    start = datetime(2026, 6, 29, 23, 30, tzinfo=UTC)
    with pytest.raises(PricingError, match=r"2026-06-30T00:00:00"):
        price_session(ENDED, [charging(start, start + mins(60), D(10000))], start, start + mins(60), TZ)


def test_parking_only_and_flat_only_are_errors_too() -> None:
    with pytest.raises(PricingError):
        price_session(ENDED, [parking(JULY, JULY + mins(10))], JULY, JULY + mins(10), TZ)
    flat = tariff([el(pc("FLAT", "1.00"))], end_date_time="2026-06-30T00:00:00Z")
    with pytest.raises(PricingError):
        price_session(flat, [], JULY, JULY, TZ)


def test_quote_after_the_end_is_an_error() -> None:
    with pytest.raises(PricingError, match="no tariff version valid"):
        quote(ENDED, JULY, "10", timedelta(hours=1), TZ)


def test_explicit_opt_in_prices_untariffed_periods_free() -> None:
    r = price_session(
        ENDED, [charging(JULY, JULY + mins(60), D(10000))], JULY, JULY + mins(60), TZ, allow_untariffed=True
    )
    assert r.total_cost.excl_vat == D("0.00") and r.period_tariffs == [None]


def test_within_validity_still_priced() -> None:
    june = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    r = price_session(ENDED, [charging(june, june + mins(60), D(10000))], june, june + mins(60), TZ)
    assert r.total_cost.excl_vat == D("2.50")


async def test_rating_marks_the_session_failed_with_the_instant(db: Database) -> None:
    await seed_pricing_network(db)
    # Every stored version ends before the session (rows as an import stores them).
    async with db.session() as s:
        for row in (await s.scalars(select(TariffVersion))).all():
            row.data = {**row.data, "end_date_time": "2026-06-30T00:00:00Z"}
    sid = await seed_ended_session(db, "AMS-01-1", JULY, 60, "10")
    assert await rate_pending(db, ()) == 0
    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        assert session is not None
        assert session.pricing_state == PricingState.FAILED
        assert session.pricing_error is not None
        assert "no tariff version valid at 2026-07-01T10:00:00" in session.pricing_error
        assert await s.scalar(select(func.count()).select_from(Cdr)) == 0
        assert await s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
