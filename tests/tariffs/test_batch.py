"""price_batch == price_session, cost field by cost field, and the integer rounding helpers == round_amount."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from decimal import localcontext

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tariff_helpers import el, local, pc, tariff

from evhub.money import (
    is_rounding_tie,
    place_exponent,
    reset_rounding,
    round_amount,
    round_units,
    round_units_approx,
    set_rounding,
)
from tariffs.batch import COST_FIELDS, columns_from_sessions, price_batch
from tariffs.compiled import compile_tariff
from tariffs.engine import price_session
from tariffs.periods import Period, charging, parking

TZ = "Europe/Amsterdam"

# ----------------------------------------------------------------------------------------- money helpers


@pytest.mark.parametrize("currency", ["EUR", "JPY", "BHD", "CHF"])
def test_round_units_matches_round_amount(currency):
    rng = random.Random(7)
    if currency == "CHF":
        set_rounding("CHF", "0.05")
    try:
        exp = place_exponent(currency)
        dens = [1, 2, 3, 4, 5, 7, 8, 10, 20, 40, 125, 1000, 3600, 36000, 12100, 999_983]
        for _ in range(4000):
            den = rng.choice(dens)
            num = rng.randint(-(10**9), 10**9) if rng.random() < 0.7 else rng.randint(-50, 50) * den // 2
            with localcontext() as ctx:
                ctx.prec = 80
                value = D(num) / D(den) * D(10) ** exp
                want = round_amount(value, currency)
            got = round_units(num, den, currency)
            assert D(got).scaleb(exp) == want, (num, den)
            assert int(round_units(np.array([num]), den, currency)[0]) == got
            twice = abs(D(num) * 2 / D(den))
            inc = int(D(1).scaleb(-exp) * D(str(_increment(currency))))
            assert bool(is_rounding_tie(num, den, currency)) == (twice % (2 * inc) == inc)
    finally:
        reset_rounding()


def _increment(currency):
    from evhub.money import rounding_rule

    return rounding_rule(currency).increment


def test_round_units_approx_decides_only_far_from_boundaries():
    vals = np.array([1.2, 1.5, 1.5000000001, 2.49999999, -1.5, -0.4, 1000.7])
    units, undecided = round_units_approx(vals, "EUR", 1e-6)
    assert undecided.tolist() == [False, True, True, True, True, False, False]
    assert units[0] == 1 and units[5] == 0 and units[6] == 1001


# ------------------------------------------------------------------------------------------- tariffs

TARIFFS = {
    "spec_energy_flat_min": tariff(
        [el(pc("FLAT", "0.50", "20"), pc("ENERGY", "0.25", "10"))],
        min_price={"excl_vat": "0.50", "incl_vat": "0.55"},
    ),
    "spec_parking_step": tariff(
        [el(pc("FLAT", "0.50", "20"), pc("ENERGY", "0.25", "10"), pc("PARKING_TIME", "2.00", "20", 900))]
    ),
    "spec_time_parking": tariff([el(pc("TIME", "3.00", "10", 60), pc("PARKING_TIME", "5.00", "20", 300))]),
    "spec_alt_text": tariff([el(pc("TIME", "1.90", "5.2", 300))], max_price={"excl_vat": "3.10"}),
    "spec_step": tariff(
        [
            el(
                pc("TIME", "1.20", None, 1800),
                pc("PARKING_TIME", "1.00", None, 900),
                start_time="00:00",
                end_time="17:00",
            ),
            el(
                pc("TIME", "2.40", None, 900),
                pc("PARKING_TIME", "1.00", None, 900),
                start_time="17:00",
                end_time="20:00",
            ),
            el(pc("TIME", "2.40", None, 900), start_time="20:00", end_time="00:00"),
        ]
    ),
    "spec_complex_no_current": tariff(
        [
            el(pc("FLAT", "2.50", "15")),
            el(pc("TIME", "1.00", "20", 900), max_current="32.00"),
            el(pc("TIME", "1.25", "20", 600), day_of_week=["SATURDAY", "SUNDAY"]),
            el(
                pc("TIME", "2.00", "20", 600),
                day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
            ),
            el(
                pc("PARKING_TIME", "5.00", "10", 300),
                start_time="09:00",
                end_time="18:00",
                day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
            ),
            el(
                pc("PARKING_TIME", "6.00", "10", 300),
                start_time="10:00",
                end_time="17:00",
                day_of_week=["SATURDAY"],
            ),
        ]
    ),
    "spec_max_duration": tariff(
        [
            el(pc("ENERGY", "0.00", "20"), max_duration=1800),
            el(pc("ENERGY", "0.25", "20"), max_duration=3600),
            el(pc("ENERGY", "0.40", "20")),
        ]
    ),
    "night_day_window": tariff(
        [
            el(pc("FLAT", "0.35", "21")),
            el(
                pc("ENERGY", "0.29", "21"), pc("TIME", "0.60", "21", 60), start_time="23:00", end_time="07:00"
            ),
            el(pc("ENERGY", "0.39", "21"), pc("TIME", "1.20", "21", 60)),
            el(pc("PARKING_TIME", "6.00", "21", 300)),
        ],
        max_price={"excl_vat": "50", "incl_vat": "60.5"},
    ),
    "dst_hour_dates_steps": tariff(
        [
            el(
                pc("ENERGY", "0.317", "19", 500),
                pc("TIME", "0.91", "5.5", 900),
                start_time="02:00",
                end_time="03:00",
            ),
            el(
                pc("ENERGY", "0.123", "21", 250),
                start_date="2026-03-29",
                end_date="2026-10-26",
                min_duration=600,
            ),
            el(
                pc("FLAT", "1.11", "21"),
                pc("ENERGY", "0.2718", None, 100),
                pc("TIME", "1.7", "20", 60),
                pc("PARKING_TIME", "2.345", "21", 120),
                day_of_week=["SUNDAY", "MONDAY", "SATURDAY"],
            ),
            el(pc("ENERGY", "0.3333", "21", 7), pc("PARKING_TIME", "0.9", "9", 1)),
        ],
        min_price={"excl_vat": "1.37"},
        max_price={"excl_vat": "23.45"},
    ),
    "kwh_fallback": tariff([el(pc("ENERGY", "0.20", "21"), max_kwh="10"), el(pc("ENERGY", "0.30", "21"))]),
}
VERSIONS = [
    tariff(
        [el(pc("ENERGY", "0.25", "21"), pc("PARKING_TIME", "3.00", "21", 600))],
        id="V",
        start_date_time="2026-03-01T00:00:00Z",
        min_price={"excl_vat": "2.00"},
    ),
    tariff(
        [
            el(
                pc("ENERGY", "0.31", "21", 10),
                pc("TIME", "0.5", "21", 60),
                start_time="18:00",
                end_time="21:00",
            ),
            el(pc("ENERGY", "0.27", "21")),
        ],
        id="V",
        start_date_time="2026-03-29T00:30:00Z",
        end_date_time="2026-10-25T01:30:00Z",
    ),
]
COMPILED = {k: compile_tariff(v) for k, v in TARIFFS.items()}
COMPILED["versions"] = [compile_tariff(v) for v in VERSIONS]

ANCHORS = [
    local("2026-03-28T20:00"),
    local("2026-10-24T21:00"),
    local("2026-01-09T15:00"),
    datetime(2026, 6, 13, 22, 0, tzinfo=UTC),
]


@st.composite
def sessions(draw):
    """(periods, start, end): 1-4 periods in whole seconds near a DST switch or elsewhere."""
    anchor = draw(st.sampled_from(ANCHORS))
    start = anchor + timedelta(seconds=draw(st.integers(0, 30 * 3600)))
    t = start + timedelta(seconds=draw(st.sampled_from([0, 0, 0, 45, 3600])))
    plist = []
    for _ in range(draw(st.integers(0, 4))):
        dur = draw(st.one_of(st.integers(0, 600), st.integers(600, 12 * 3600)))
        end = t + timedelta(seconds=dur)
        kind = draw(st.sampled_from(["charge", "charge", "park", "partial"]))
        if kind == "park":
            plist.append(Period(t, end, parking_s=D(dur)))
        elif kind == "charge":
            plist.append(charging(t, end, D(draw(st.integers(0, 90000)))))
        else:
            ts = draw(st.integers(0, dur))
            plist.append(
                Period(
                    t,
                    end,
                    D(draw(st.integers(0, 90000))),
                    time_s=D(ts),
                    parking_s=D(draw(st.integers(0, dur - ts))),
                )
            )
        t = end + timedelta(seconds=draw(st.sampled_from([0, 0, 0, 17, 900])))
    end = t + timedelta(seconds=draw(st.sampled_from([0, 0, 30])))
    return plist, start, end


def assert_same(result, i, reference):
    for f in COST_FIELDS:
        got, want = result.price(f, i), getattr(reference, f)
        assert (got.excl_vat, got.incl_vat) == (want.excl_vat, want.incl_vat), (i, f, got, want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(COMPILED)), items=st.lists(sessions(), min_size=1, max_size=6))
def test_price_batch_equals_price_session(name, items):
    t = COMPILED[name]
    pcols, scols = columns_from_sessions(items)
    result = price_batch(t, pcols, scols, TZ)
    assert len(result) == len(items)
    for i, (plist, s, e) in enumerate(items):
        assert_same(result, i, price_session(t, plist, s, e, TZ))
    if name == "kwh_fallback":
        assert result.fallback.all()


ZONES = ["Europe/Amsterdam", "America/New_York", "UTC", "Asia/Kolkata"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["spec_step", "dst_hour_dates_steps", "versions"]),
    items=st.lists(st.tuples(sessions(), st.sampled_from(ZONES)), min_size=1, max_size=8),
)
def test_price_batch_per_session_zones(name, items):
    t = COMPILED[name]
    pcols, scols = columns_from_sessions([s for s, _ in items])
    scols["time_zone"] = np.array([z for _, z in items], dtype=object)
    result = price_batch(t, pd.DataFrame(pcols), pd.DataFrame(scols))
    for i, ((plist, s, e), z) in enumerate(items):
        assert_same(result, i, price_session(t, plist, s, e, z))


def test_dst_days_and_whole_batch_agree():
    """Many deterministic sessions across both 2026 Amsterdam DST switches, in one batch."""
    t = COMPILED["dst_hour_dates_steps"]
    rng = random.Random(3)
    items = []
    for anchor in (local("2026-03-28T22:00"), local("2026-10-24T22:00")):
        for _ in range(400):
            s = anchor + timedelta(seconds=rng.randint(0, 8 * 3600))
            ce = s + timedelta(seconds=rng.randint(60, 6 * 3600))
            e = ce + timedelta(seconds=rng.choice([0, rng.randint(1, 7200)]))
            ps = [charging(s, ce, D(rng.randint(0, 60000)))] + ([parking(ce, e)] if e > ce else [])
            items.append((ps, s, e))
    pcols, scols = columns_from_sessions(items)
    result = price_batch(t, pcols, scols, TZ)
    for i, (ps, s, e) in enumerate(items):
        assert_same(result, i, price_session(t, ps, s, e, TZ))
    assert result.fallback.mean() < 0.05  # nearly all vectorised


def test_empty_and_errors():
    t = COMPILED["spec_energy_flat_min"]
    s = datetime(2026, 5, 1, 12, tzinfo=UTC)
    pcols, scols = columns_from_sessions([([], s, s + timedelta(hours=1))])
    r = price_batch(t, pcols, scols, TZ)
    assert_same(r, 0, price_session(t, [], s, s + timedelta(hours=1), TZ))
    assert r.amount("total_cost", 0) == D("0.50") and r.amount("total_cost", 0, incl_vat=True) == D("0.60")
    bad = {
        "session": np.array([0, 0]),
        "start": np.array([200, 100]),
        "end": np.array([300, 200]),
        "energy_wh": np.array([1, 1]),
        "time_s": np.array([100, 100]),
        "parking_s": np.array([0, 0]),
    }
    with pytest.raises(ValueError, match="chronological"):
        price_batch(t, bad, {"start": np.array([100]), "end": np.array([300])}, TZ)
    with pytest.raises(ValueError, match="time_zone"):
        price_batch(t, pcols, scols)
    frame = r.to_frame()
    assert list(frame["total_cost_excl"]) == [50]
