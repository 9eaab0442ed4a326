"""Issue 13 item 5 ("numbers use 4 decimals", OCPI 2.2.1 and 2.1.1 types): the priced periods are exactly
what their OCPI form says.

Pure: a meter series cut into periods as rating does (``periods_from_meter_values``), priced; the periods
the engine priced (their published form, :mod:`tariffs.core.published_form`) written as OCPI charging
periods (``to_ocpi``) and the CDR's totals state every kWh and hour with at most 4 decimals (POWER and
CURRENT 3), and read back (``periods_from_ocpi``) they are the same periods: starts, energies, charging,
parking and reservation seconds, power and current. The published form of the published form is itself.
(Found by this property: energy was rounded to 1e-4 Wh instead of 1e-4 kWh, so the priced energies were
not the published ones.)
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, note
from hypothesis import strategies as st

from tariffs.core.charging_periods import Period
from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import PricingError, price_session
from tariffs.core.meter_periods import periods_from_meter_values
from tariffs.core.ocpi_periods import periods_from_ocpi, to_ocpi
from tariffs.core.published_form import publishable
from tariffs.core.render import cdr_fields
from tariffs.core.tariff_document import Tariff

from .strategies import TZ, MeterProfile, budget, meter_profiles, start_instants, versions

LEVELS = {"POWER", "CURRENT", "MIN_POWER", "MAX_POWER", "MIN_CURRENT", "MAX_CURRENT"}


@st.composite
def sessions(draw: st.DrawFn) -> tuple[list[Tariff], MeterProfile]:
    start = draw(start_instants())
    return draw(versions(start)), draw(meter_profiles(start))


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _key(p: Period) -> tuple[Any, ...]:
    return (p.start, p.energy_wh, p.time_s, p.parking_s, p.reservation_s, p.power_kw, p.current_a)


@budget(150)
@given(sessions())
def test_the_priced_periods_are_their_4_decimal_ocpi_form(case: tuple[list[Tariff], MeterProfile]) -> None:
    tariffs, profile = case
    note(f"profile: {profile!r}")
    compiled = [compile_tariff(t) for t in tariffs]
    periods = periods_from_meter_values(profile.samples(), profile.start, profile.end, compiled, TZ)
    try:
        result = price_session(compiled, periods, profile.start, profile.end, TZ, precut=True)
    except PricingError:
        return
    fields = cdr_fields(result)
    for name in ("total_energy", "total_time", "total_parking_time"):
        assert _places(fields[name]) <= 4, (name, fields[name])
    for cp in fields["charging_periods"]:
        for d in cp["dimensions"]:
            assert _places(d["volume"]) <= (3 if d["type"] in LEVELS else 4), d
    back = periods_from_ocpi(to_ocpi(result.periods), profile.end)
    assert [_key(p) for p in back] == [_key(p) for p in result.periods]
    again = publishable(result.periods, profile.start, profile.end)
    assert [_key(p) for p in again] == [_key(p) for p in result.periods]
    assert sum((p.energy_wh for p in result.periods), Decimal(0)) / 1000 == result.total_energy
