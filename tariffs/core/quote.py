"""Quotes: what a planned session would cost, priced by exactly the same engine path as a real session.

A plan is a start, a duration of charging with a planned energy (spread evenly), optionally a constant power
(for power restrictions; default: the plan's average power) and a parking time after charging.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from kernel.timeutil import ensure_utc
from tariffs.core.charging_periods import Period, average_power_kw, charging, parking, seconds_between
from tariffs.core.engine import TariffInput, compile_versions, price_session
from tariffs.core.pricing_result import PricingResult


def _td(value: timedelta | int | Decimal) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=int(value))


def quote(
    tariffs: TariffInput,
    start: datetime,
    planned_kwh: Decimal | int | str,
    planned_duration: timedelta | int,
    time_zone: str,
    *,
    power_kw: Decimal | int | str | None = None,
    current_a: Decimal | int | str | None = None,
    parking_duration: timedelta | int = timedelta(0),
) -> PricingResult:
    """Price a planned session (durations as timedelta or seconds). Pure, same rules as :func:`price_session`."""
    versions = compile_versions(tariffs)
    start = ensure_utc(start)
    charge_end = start + _td(planned_duration)
    end = charge_end + _td(parking_duration)
    energy_wh = Decimal(planned_kwh) * 1000
    periods: list[Period] = []
    if charge_end > start:
        secs = seconds_between(start, charge_end)
        pw = Decimal(power_kw) if power_kw is not None else average_power_kw(energy_wh, secs)
        cur = Decimal(current_a) if current_a is not None else None
        periods.append(
            charging(
                start,
                charge_end,
                energy_wh,
                power_kw=pw,
                current_a=cur,
                min_power_kw=pw,
                max_power_kw=pw,
                min_current_a=cur,
                max_current_a=cur,
            )
        )
    if end > charge_end:
        periods.append(parking(charge_end, end))
    return price_session(versions, periods, start, end, time_zone)
