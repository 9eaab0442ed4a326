"""M1 part (b) (issue #12): OCPP 2.0.1 sessions lost their first meter interval (priced as PARKING_TIME).

The charger stamps the ``Transaction.Begin`` reading a few ms before the Started event (= session start);
the period builder dropped it and copied the first periodic reading to the start, so the first interval had
no energy and was parking. Rule: the register value at the session start is the last reading at or before
the start (the Begin reading is the baseline), and at the end the first reading at or after the end; a
later reading is never copied to the start. OCPP 2.0.1 ReadingContextEnumType "Transaction.Begin — Value
taken at start of transaction"; OCPI 2.2.1 "PARKING_TIME — Time during this ChargingPeriod not charging".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import price_session
from tariffs.core.meter_periods import MeterSample, periods_from_meter_values

from .tariff_helpers import el, pc, tariff

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
S = timedelta(seconds=1)
TIME_PARKING = tariff([el(pc("TIME", "1.00")), el(pc("PARKING_TIME", "5.00"))])


def _price(samples: list[MeterSample], start: datetime, end: datetime):
    periods = periods_from_meter_values(samples, start, end, [compile_tariff(TIME_PARKING)], "UTC")
    return periods, price_session(TIME_PARKING, periods, start, end, "UTC", precut=True)


def test_begin_reading_before_the_start_is_the_baseline() -> None:
    samples = [
        MeterSample(T0 - 5 * MS, D(0)),
        MeterSample(T0 + 60 * S, D(550)),
        MeterSample(T0 + 120 * S, D(1100)),
    ]
    periods, r = _price(samples, T0, T0 + 120 * S)
    assert periods[0].start == T0 and periods[0].parking_s == 0
    assert sum(p.energy_wh for p in periods) == D(1100)
    assert r.total_parking_time == 0 and r.total_energy == D("1.1")
    assert r.total_cost.excl_vat == D("0.03")  # 2 min charging at 1.00/h, no parking


def test_last_reading_at_or_before_the_start_wins() -> None:
    samples = [
        MeterSample(T0 - 10 * S, D(90)),  # older reading, not the baseline
        MeterSample(T0 - 3 * MS, D(100)),  # Begin
        MeterSample(T0 + 60 * S, D(650)),
    ]
    periods, _ = _price(samples, T0, T0 + 60 * S)
    assert [(p.start, p.end, p.energy_wh) for p in periods] == [(T0, T0 + 60 * S, D(550))]


def test_end_reading_just_after_the_end_is_the_final_value() -> None:
    samples = [
        MeterSample(T0, D(0)),
        MeterSample(T0 + 60 * S, D(550)),
        MeterSample(T0 + 120 * S + 4 * MS, D(1100)),
    ]
    periods, r = _price(samples, T0, T0 + 120 * S)
    assert sum(p.energy_wh for p in periods) == D(1100) and r.total_parking_time == 0
    assert periods[-1].end == T0 + 120 * S
