"""Property tests: lines add up to totals, min/max respected, monotone in usage, step never under-bills."""

from datetime import timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from tariffs.core.charging_periods import charging, parking
from tariffs.core.engine import price_session

from .tariff_helpers import el, local, pc, tariff

TZ = "Europe/Amsterdam"
START = local("2026-03-28T20:00")  # spans the 2026-03-29 DST switch for long sessions

prices = st.decimals(min_value=D("0"), max_value=D("2"), places=3)
vats = st.one_of(st.none(), st.sampled_from([D("0"), D("5.2"), D("10"), D("21")]))
steps = st.sampled_from([1, 60, 300, 900, 500, 1000])


@st.composite
def tariffs(draw, with_bounds=True):
    e_step, t_step, p_step = draw(steps), draw(steps), draw(steps)
    elements = [
        el(
            pc("ENERGY", str(draw(prices)), draw(vats), e_step),
            pc("TIME", str(draw(prices)), draw(vats), t_step),
            start_time="22:00",
            end_time="06:00",
        ),
        el(pc("ENERGY", str(draw(prices)), draw(vats), e_step), max_kwh=str(draw(st.integers(1, 40)))),
        el(
            pc("FLAT", str(draw(prices)), draw(vats)),
            pc("ENERGY", str(draw(prices)), draw(vats), e_step),
            pc("TIME", str(draw(prices)), draw(vats), t_step),
            pc("PARKING_TIME", str(draw(prices)), draw(vats), p_step),
        ),
    ]
    extra = {}
    if with_bounds and draw(st.booleans()):
        lo = draw(st.decimals(min_value=D("0"), max_value=D("5"), places=2))
        extra["min_price"] = {"excl_vat": str(lo)}
        if draw(st.booleans()):
            extra["min_price"]["incl_vat"] = str(lo * D("1.1"))
    if with_bounds and draw(st.booleans()):
        # Consistent bounds (max above min also incl. VAT); contradictory ones: test_max_wins_over_min below.
        hi = draw(st.decimals(min_value=D("6"), max_value=D("40"), places=2))
        extra["max_price"] = {"excl_vat": str(hi)}
        if draw(st.booleans()):
            extra["max_price"]["incl_vat"] = str(hi * D("1.2"))
    return tariff(elements, **extra)


def session(minutes: int, wh: int, park: int):
    end_c = START + timedelta(minutes=minutes)
    end = end_c + timedelta(minutes=park)
    ps = [charging(START, end_c, D(wh))] + ([parking(end_c, end)] if park else [])
    return ps, end


@settings(max_examples=120, deadline=None)
@given(tariffs(), st.integers(1, 900), st.integers(0, 80000), st.integers(0, 300))
def test_lines_add_up_and_bounds_hold(t, minutes, wh, park):
    ps, end = session(minutes, wh, park)
    r = price_session(t, ps, START, end, TZ)
    assert sum(ln.amount_excl for ln in r.lines) == r.total_cost.excl_vat
    assert sum(ln.amount_incl for ln in r.lines) == r.total_cost.incl_vat
    for ln in r.lines:
        if ln.charges:
            assert sum(c.amount_excl for c in ln.charges) == ln.amount_excl
            assert sum(c.amount_incl for c in ln.charges) == ln.amount_incl
    parts = (
        r.total_fixed_cost,
        r.total_energy_cost,
        r.total_time_cost,
        r.total_parking_cost,
        r.total_reservation_cost,
    )
    adjustments = sum(ln.amount_excl for ln in r.lines if ln.kind != "component")
    assert sum(p.excl_vat for p in parts) + adjustments == r.total_cost.excl_vat
    src = t
    if src.min_price:
        assert r.total_cost.excl_vat >= src.min_price.excl_vat
        if src.min_price.incl_vat is not None:
            assert r.total_cost.incl_vat >= src.min_price.incl_vat.quantize(D("0.01"))
    if src.max_price:
        assert r.total_cost.excl_vat <= src.max_price.excl_vat
        if src.max_price.incl_vat is not None:
            assert r.total_cost.incl_vat <= src.max_price.incl_vat.quantize(D("0.01"))


@st.composite
def fixed_tariffs(draw):
    """One unrestricted element (a 'fixed' tariff), any step sizes, optional min/max price."""
    comps = [
        pc("FLAT", str(draw(prices)), draw(vats)),
        pc("ENERGY", str(draw(prices)), draw(vats), draw(steps)),
        pc("TIME", str(draw(prices)), draw(vats), draw(steps)),
        pc("PARKING_TIME", str(draw(prices)), draw(vats), draw(steps)),
    ]
    extra = {}
    if draw(st.booleans()):
        extra["min_price"] = {"excl_vat": str(draw(st.decimals(min_value=D(0), max_value=D(5), places=2)))}
    if draw(st.booleans()):
        extra["max_price"] = {"excl_vat": str(draw(st.decimals(min_value=D(5), max_value=D(40), places=2)))}
    return tariff([el(*comps)], **extra)


@settings(max_examples=150, deadline=None)
@given(
    fixed_tariffs(),
    st.integers(1, 900),
    st.integers(0, 80000),
    st.integers(0, 300),
    st.integers(0, 120),
    st.integers(0, 120),
    st.integers(0, 20000),
)
def test_more_usage_never_costs_less(t, minutes, wh, park, more_charge, more_park, more_wh):
    """Under a fixed tariff, more energy, more charging time or more parking never lowers the price.

    Excluded by OCPI's own step rule: going from no parking to some parking (the TIME step is then dropped,
    see test_ocpi_step_rule_is_not_monotone_when_parking_starts). The incl. VAT total is only monotone when
    min/max prices carry incl_vat (else the clamp follows the session's changing VAT ratio).
    """
    ps, end = session(minutes, wh, park)
    base = price_session(t, ps, START, end, TZ).total_cost
    ps2, end2 = session(minutes + more_charge, wh + more_wh, park + (more_park if park else 0))
    grown = price_session(t, ps2, START, end2, TZ).total_cost
    assert grown.excl_vat >= base.excl_vat
    if t.min_price is None and t.max_price is None:
        assert grown.incl_vat >= base.incl_vat


def test_ocpi_step_rule_is_not_monotone_when_parking_starts():
    # TIME 2.00/h per 15 min; 1 min charging bills 15 min. Add 1 free-priced minute of parking: the step moves
    # to parking (mod_cdrs: "step_size is only taken into account for the total parking duration").
    t = tariff([el(pc("TIME", "2.00", None, 900), pc("PARKING_TIME", "0.00", None, 60))])
    alone, end = session(1, 100, 0)
    with_park, end2 = session(1, 100, 1)
    assert price_session(t, alone, START, end, TZ).total_cost.excl_vat == D("0.50")
    assert price_session(t, with_park, START, end2, TZ).total_cost.excl_vat == D("0.03")


def test_step_extra_at_last_price_can_make_more_energy_cheaper():
    # Found by hypothesis: the step extra is billed at the *last* period's price, so more energy in an earlier,
    # cheaper period can shrink the expensive extra. This is OCPI's rule, kept deliberately (docs/tariffs.md).
    t = tariff(
        [
            el(pc("ENERGY", "0.255", None, 60), start_time="22:00", end_time="06:00"),
            el(pc("ENERGY", "0.000", None, 60)),
        ]
    )
    # 130 min, the last 10 after 22:00: that period keeps some of the 1 (2) Wh at the published 0.1 Wh precision
    one, end = session(130, 1, 0)
    two, _ = session(130, 2, 0)
    assert price_session(t, one, START, end, TZ).total_cost.excl_vat == D("0.02")
    assert price_session(t, two, START, end, TZ).total_cost.excl_vat == D("0.01")


@settings(max_examples=120, deadline=None)
@given(tariffs(with_bounds=False), st.integers(1, 900), st.integers(0, 80000), st.integers(0, 300))
def test_step_size_never_bills_less_than_used(t, minutes, wh, park):
    ps, end = session(minutes, wh, park)
    r = price_session(t, ps, START, end, TZ)
    for s in r.step_roundings:
        assert s.billed >= s.used
        assert s.billed - s.used < s.step_size
        assert s.billed % s.step_size == 0
    billed_e = sum(c.billed_quantity for c in r.charges if c.dimension == "ENERGY")
    used_e = sum(c.quantity for c in r.charges if c.dimension == "ENERGY")
    assert billed_e >= used_e
    # every charge is billed at least what it used
    assert all(c.billed_quantity >= c.quantity for c in r.charges)


@settings(max_examples=300, deadline=None)
@given(
    st.decimals(min_value=D("-100000"), max_value=D("100000"), places=6),
    st.sampled_from(["EUR", "JPY", "BHD", "CHF"]),
)
def test_engine_rounder_matches_round_amount(x, currency):
    from kernel.money import reset_rounding, round_amount, rounder, set_rounding

    set_rounding("CHF", "0.05")
    try:
        assert rounder(currency)(x) == round_amount(x, currency)
    finally:
        reset_rounding()


def test_max_wins_when_bounds_contradict() -> None:
    """min_price incl. VAT above what max_price allows: the maximum wins (never charge more than max_price)."""
    t = tariff(
        [el(pc("ENERGY", "1.00", 0, 1))],
        min_price={"excl_vat": "4.56", "incl_vat": "5.016"},
        max_price={"excl_vat": "5.00"},
    )
    ps, end = session(30, 8000, 0)
    r = price_session(t, ps, START, end, TZ)
    assert (r.total_cost.excl_vat, r.total_cost.incl_vat) == (D("5.00"), D("5.00"))
