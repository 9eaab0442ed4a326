"""Property d (issue 12, item 6): a quote is the CDR of the same session.

A plan (constant power P for a duration D, then parking K, optionally a constant current) is quoted with
:func:`tariffs.core.quote.quote`; the same session metered (a linear energy register at power P, a sample per
interval, the register flat while parked) is cut by ``periods_from_meter_values`` as rating does and priced by
``price_session``. Both must give the same total, excl. and incl. VAT.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import PricingError, price_session
from tariffs.core.meter_periods import MeterSample, periods_from_meter_values
from tariffs.core.quote import quote
from tariffs.core.tariff_document import Tariff

from .strategies import TZ, budget, start_instants, versions

D = Decimal


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[Tariff], datetime, int, int, int, Decimal | None]:
    start = draw(start_instants())
    power_w = draw(st.integers(1, 830)) * 60  # the energy of a minute is whole Wh
    return (
        draw(versions(start)),
        start,
        power_w,
        draw(st.integers(1, 600)),  # minutes charging
        draw(st.sampled_from([0, 0, 5, 30, 95, 240])),  # minutes parked
        draw(st.one_of(st.none(), st.sampled_from([D(6), D(16), D(20), D(32)]))),
    )


def metered(
    start: datetime, power_w: int, minutes: int, parked: int, current: Decimal | None
) -> list[MeterSample]:
    """The session as a meter reports it: a sample a minute, the register rising at ``power_w``, then flat."""
    out = [MeterSample(start, D(0), D(power_w), current)]
    for m in range(1, minutes + parked + 1):
        charging = m <= minutes
        wh = D(power_w) * min(m, minutes) / 60
        out.append(
            MeterSample(
                start + timedelta(minutes=m),
                wh,
                D(power_w) if charging else D(0),
                current if charging or current is None else D(0),
            )
        )
    return out


@budget(150)
@given(plans())
def test_quote_equals_the_cdr_of_the_same_session(
    plan: tuple[list[Tariff], datetime, int, int, int, Decimal | None],
) -> None:
    """Issue 12 item 6d (T3, M9): ``quote(P, D, K, current)`` == ``price_session`` of the periods a linear meter
    series at power P (current where the tariff restricts on it) gives, excl. and incl. VAT; both refuse alike
    when no version is valid."""
    tariffs, start, power_w, minutes, parked, current = plan
    kwh = D(power_w) * minutes / 60 / 1000
    end = start + timedelta(minutes=minutes + parked)
    compiled = [compile_tariff(t) for t in tariffs]
    samples = metered(start, power_w, minutes, parked, current)
    try:
        periods = periods_from_meter_values(samples, start, end, compiled, TZ)
        cdr = price_session(compiled, periods, start, end, TZ, precut=True)
    except PricingError:
        cdr = None
    try:
        quoted = quote(
            tariffs,
            start,
            kwh,
            timedelta(minutes=minutes),
            TZ,
            power_kw=D(power_w) / 1000,
            current_a=current,
            parking_duration=timedelta(minutes=parked),
        )
    except PricingError:
        quoted = None
    assert (cdr is None) == (quoted is None)
    if cdr is not None and quoted is not None:
        assert quoted.total_energy == cdr.total_energy
        assert (quoted.total_cost.excl_vat, quoted.total_cost.incl_vat) == (
            cdr.total_cost.excl_vat,
            cdr.total_cost.incl_vat,
        )
