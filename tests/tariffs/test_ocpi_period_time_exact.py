"""T5 (issue #12, reader part): CDRs were not reproducible from their own OCPI content.

``to_ocpi`` writes TIME/PARKING_TIME in hours to 4 decimals (OCPI types: "numbers use 4 decimals"; 13 min
= 0.2167 h); reading that back literally gives 780.12 s, one more ``step_size`` block. Rule: when a period's
TIME + PARKING_TIME + RESERVATION_TIME equal its duration within the published rounding (0.5e-4 h per
dimension), the period's exact duration is used, split in the stated proportion. OCPI 2.2.1 ChargingPeriod
``start_date_time``: "A period ends when the next period starts".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from tariffs.core.charging_periods import charging, parking
from tariffs.core.engine import price_session
from tariffs.core.ocpi_periods import periods_from_ocpi, to_ocpi

from .tariff_helpers import el, pc, tariff

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
PER_MINUTE = tariff([el(pc("TIME", "3.00", step=60)), el(pc("PARKING_TIME", "6.00", step=60))])


def test_13_minutes_round_trip_prices_the_same() -> None:
    periods = [charging(T0, T0 + 13 * MIN, D(2000))]
    end = T0 + 13 * MIN
    direct = price_session(PER_MINUTE, periods, T0, end, "UTC")
    cps = to_ocpi(periods)
    assert periods_from_ocpi(cps, end)[0].time_s == D(780)
    again = price_session(PER_MINUTE, cps, T0, end, "UTC")
    assert again.total_cost == direct.total_cost
    assert again.total_cost.excl_vat == D("0.65")  # 13 min x 3.00/h, not 14 min


def test_charging_then_parking_round_trip() -> None:
    end = T0 + 20 * MIN
    periods = [charging(T0, T0 + 7 * MIN, D(1000)), parking(T0 + 7 * MIN, end)]
    direct = price_session(PER_MINUTE, periods, T0, end, "UTC")
    back = periods_from_ocpi(to_ocpi(periods), end)
    assert [(p.time_s, p.parking_s) for p in back] == [(D(420), D(0)), (D(0), D(780))]
    assert price_session(PER_MINUTE, to_ocpi(periods), T0, end, "UTC").total_cost == direct.total_cost


def test_volumes_that_do_not_fill_the_period_are_taken_as_given() -> None:
    cps = to_ocpi([charging(T0, T0 + 13 * MIN, D(2000))])
    back = periods_from_ocpi(cps, T0 + 20 * MIN)  # the session goes on 7 min beyond the stated TIME
    assert back[0].time_s == D("0.2167") * 3600


def test_a_period_too_short_to_state_its_hours_is_read_back_as_its_duration() -> None:
    """A period of 1 ms (a session that starts just before a tariff boundary) states TIME 0 (1 ms is 0.0000 h;
    it was 0.000000 h at 6 decimals too): that stated 0 fills the period within the rounding, so it is read
    back as the period's exact duration and the CDR re-prices to its own total (it was read as nothing, 0.01
    less)."""
    start = datetime(2026, 3, 2, 9, 59, 59, 999000, tzinfo=UTC)
    end = start + 30 * MIN
    t = tariff([el(pc("TIME", "36000.00"), end_time="10:00"), el(pc("TIME", "1.00"))])
    direct = price_session(t, [charging(start, end, D(2000))], start, end, "UTC")
    cps = to_ocpi(direct.periods)
    assert [d.volume for d in cps[0].dimensions if d.type == "TIME"] == [D(0)]
    assert periods_from_ocpi(cps, end)[0].time_s == D("0.001")
    assert direct.total_cost.excl_vat == D("0.51")  # 1 ms x 36000.00/h + 29:59.999 x 1.00/h
    assert price_session(t, cps, start, end, "UTC").total_cost == direct.total_cost
