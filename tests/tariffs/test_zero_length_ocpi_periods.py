"""T6 (issue #12): zero-length OCPI charging periods were dropped with their volumes (11 kWh priced as 5).

Rule: a ChargingPeriod that ends where it starts (the next one starts at the same instant, or the session ends
then) hands its volumes to the next period with a later start, or to the previous one when it is last; no
volume is ever dropped. OCPI 2.2.1 ChargingPeriod: "A period ends when the next period starts."; CDR
``total_energy``: "Total energy charged, in kWh."
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from tariffs.core.engine import price_session
from tariffs.core.ocpi_periods import periods_from_ocpi
from tariffs.core.tariff_document import ChargingPeriod

from .tariff_helpers import el, pc, tariff

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
END = T0 + timedelta(hours=2)
ENERGY_TIME = tariff([el(pc("ENERGY", "0.25"), pc("TIME", "1.00"))])


def cp(at: datetime, **volumes: str) -> ChargingPeriod:
    return ChargingPeriod.model_validate(
        {
            "start_date_time": at.isoformat(),
            "dimensions": [{"type": k, "volume": v} for k, v in volumes.items()],
        }
    )


def test_zero_length_period_in_the_middle_keeps_its_energy() -> None:
    cps = [cp(T0, ENERGY="5", TIME="1"), cp(T1, ENERGY="6"), cp(T1, ENERGY="0", TIME="0")]
    periods = periods_from_ocpi(cps, END)
    assert sum(p.energy_wh for p in periods) == D(11000)
    r = price_session(ENERGY_TIME, cps, T0, END, "UTC")
    assert r.total_energy == D("11")
    assert r.total_energy_cost.excl_vat == D("2.75")  # 11 kWh x 0.25, not 5 x 0.25


def test_zero_length_last_period_goes_to_the_previous_one() -> None:
    cps = [cp(T0, ENERGY="5", TIME="1"), cp(T1, ENERGY="6", TIME="0.5")]
    periods = periods_from_ocpi(cps, T1)  # the session ends when the last period starts
    assert [(p.start, p.end) for p in periods] == [(T0, T1)]
    assert periods[0].energy_wh == D(11000) and periods[0].time_s == D(5400)
    r = price_session(ENERGY_TIME, cps, T0, T1, "UTC")
    assert r.total_energy == D("11") and r.total_cost.excl_vat == D("4.25")  # 2.75 + 1.5 h x 1.00


def test_only_zero_length_periods_still_price_their_volumes() -> None:
    cps = [cp(T0, ENERGY="2"), cp(T0, ENERGY="3")]
    r = price_session(ENERGY_TIME, cps, T0, T0, "UTC")
    assert r.total_energy == D("5") and r.total_energy_cost.excl_vat == D("1.25")
