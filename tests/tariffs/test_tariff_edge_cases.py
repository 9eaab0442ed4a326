"""Edge cases: midnight windows, DST in Europe/Amsterdam, restrictions and tariff versions switching mid-session,
meter values to periods, quotes, grid rules and rendering."""

import json
from datetime import timedelta
from decimal import Decimal as D

import pytest

from tariffs.core.charging_periods import charging, parking
from tariffs.core.engine import PricingError, price_session
from tariffs.core.grid_rules import GridRule, price_changes, versions
from tariffs.core.meter_periods import periods_from_meter_values
from tariffs.core.quote import quote
from tariffs.core.render import cdr_fields, render_json

from .tariff_helpers import el, local, mins, pc, tariff

AMS = "Europe/Amsterdam"
H = timedelta(hours=1)

NIGHT = tariff([el(pc("TIME", "1.00"), start_time="23:00", end_time="07:00"), el(pc("TIME", "2.00"))])


def test_midnight_window_spans_two_days():
    s = local("2026-01-05T22:00")
    r = price_session(NIGHT, [charging(s, s + 10 * H, D(10000))], s, s + 10 * H, AMS)
    # 22-23 day (2.00), 23-07 night (8 h x 1.00), 07-08 day (2.00)
    assert r.total_time_cost.excl_vat == D("12.00")


def test_dst_spring_forward_2026_03_29():
    s, e = local("2026-03-29T00:00"), local("2026-03-29T08:00")
    assert e - s == 7 * H  # the clock skips 02:00-03:00
    r = price_session(NIGHT, [charging(s, e, D(10000))], s, e, AMS)
    assert r.total_time_cost.excl_vat == D("8.00")  # 6 real hours of night + 1 h day
    assert r.total_time == D("7")


def test_dst_fall_back_2026_10_25():
    s, e = local("2026-10-25T00:00"), local("2026-10-25T08:00")
    assert e - s == 9 * H  # 02:00-03:00 happens twice
    r = price_session(NIGHT, [charging(s, e, D(10000))], s, e, AMS)
    assert r.total_time_cost.excl_vat == D("10.00")  # 8 real hours of night + 1 h day


def test_window_inside_repeated_hour_billed_twice_and_skipped_hour_never():
    t = tariff([el(pc("TIME", "10.00"), start_time="02:00", end_time="03:00"), el(pc("TIME", "0.00"))])
    s, e = local("2026-10-25T00:00"), local("2026-10-25T06:00")
    assert price_session(t, [charging(s, e, D(1))], s, e, AMS).total_cost.excl_vat == D("20.00")
    s, e = local("2026-03-29T00:00"), local("2026-03-29T06:00")
    assert price_session(t, [charging(s, e, D(1))], s, e, AMS).total_cost.excl_vat == D("0.00")


def test_day_of_week_switch_at_local_midnight():
    t = tariff([el(pc("ENERGY", "0.50"), day_of_week=["SATURDAY"]), el(pc("ENERGY", "0.30"))])
    s = local("2026-01-09T23:00")  # Friday 23:00 local = 22:00 UTC
    r = price_session(t, [charging(s, s + 2 * H, D(20000))], s, s + 2 * H, AMS)
    assert r.total_energy_cost.excl_vat == D("8.00")  # 10 kWh x 0.30 + 10 kWh x 0.50


def test_min_kwh_switch_mid_period():
    t = tariff([el(pc("ENERGY", "0.20"), max_kwh="10"), el(pc("ENERGY", "0.40"))])
    s = local("2026-01-05T10:00")
    r = price_session(t, [charging(s, s + 2 * H, D(30000))], s, s + 2 * H, AMS)
    assert r.total_energy_cost.excl_vat == D("10.00")  # 10 x 0.20 + 20 x 0.40
    assert [c.quantity for c in r.charges] == [D(10000), D(20000)]


def test_tariff_versions_switch_mid_session():
    v1 = tariff([el(pc("ENERGY", "0.30", "21"))], start_date_time="2026-01-01T00:00:00Z")
    v2 = tariff([el(pc("ENERGY", "0.50", "21"))], start_date_time="2026-01-10T12:00:00Z")
    s = local("2026-01-10T12:00", "UTC") - H
    r = price_session([v2, v1], [charging(s, s + 2 * H, D(20000))], s, s + 2 * H, AMS)
    assert r.total_cost.excl_vat == D("8.00")
    assert r.tariffs_used == [("T1", "2026-01-01T00:00:00Z"), ("T1", "2026-01-10T12:00:00Z")]
    assert {ln.tariff_version for ln in r.lines} == {"2026-01-01T00:00:00Z", "2026-01-10T12:00:00Z"}


def test_no_valid_version_is_an_error_unless_allowed_then_free_and_no_flat():
    v1 = tariff([el(pc("FLAT", "1.00"), pc("ENERGY", "0.30"))], start_date_time="2026-01-10T12:00:00Z")
    s = local("2026-01-10T11:00", "UTC")
    with pytest.raises(PricingError, match="no tariff version valid at 2026-01-10T11:00:00Z"):
        price_session(v1, [charging(s, s + 2 * H, D(20000))], s, s + 2 * H, AMS)  # T1: never free
    r = price_session(v1, [charging(s, s + 2 * H, D(20000))], s, s + 2 * H, AMS, allow_untariffed=True)
    assert r.total_cost.excl_vat == D("3.00")  # only the hour after 12:00, no FLAT (no version at start)
    assert r.period_tariffs == [None, "T1"]


def test_meter_values_to_periods_power_threshold_and_parking():
    t = tariff(
        [el(pc("ENERGY", "0.20"), max_power="11"), el(pc("ENERGY", "0.40")), el(pc("PARKING_TIME", "6.00"))]
    )
    s = local("2026-01-05T10:00")
    # 22 kW for 30 min (11 kWh), 7.2 kW for 30 min (3.6 kWh), then idle 20 min
    samples = [
        (s, D(0), D(22000)),
        (s + mins(30), D(11000), D(22000)),
        (s + mins(30), D(11000), D(7200)),
        (s + mins(60), D(14600), D(7200)),
        (s + mins(80), D(14600), D(0)),
    ]
    ps = periods_from_meter_values(samples, s, s + mins(80), [_c(t)], AMS)
    assert [p.parking_s > 0 for p in ps] == [False, False, True]
    r = price_session(t, ps, s, s + mins(80), AMS, precut=True)
    assert r.total_energy_cost.excl_vat == D("5.12")  # 11 x 0.40 + 3.6 x 0.20
    assert r.total_parking_cost.excl_vat == D("2.00")
    assert r.total_parking_time.quantize(D("0.001")) == D("0.333")


def test_meter_values_power_interpolated_crossing():
    t = tariff([el(pc("ENERGY", "0.20"), max_power="11"), el(pc("ENERGY", "0.40"))])
    s = local("2026-01-05T10:00")
    # power ramps 22 kW -> 0 kW linearly over 60 min; energy linear 0 -> 11 kWh: crossing 11 kW at 30 min
    ps = periods_from_meter_values([(s, 0, 22000), (s + H, 11000, 0)], s, s + H, [_c(t)], AMS)
    assert len(ps) == 2 and ps[0].end == s + mins(30)
    assert ps[0].energy_wh == D(5500)
    r = price_session(t, ps, s, s + H, AMS, precut=True)
    assert r.total_cost.excl_vat == D("3.30")


def test_parking_grace_counts_short_pause_as_charging():
    t = tariff([el(pc("TIME", "1.00"), pc("PARKING_TIME", "10.00"))])
    s = local("2026-01-05T10:00")
    samples = [(s, 0), (s + mins(10), 1000), (s + mins(12), 1000), (s + mins(20), 2000)]
    strict = periods_from_meter_values(samples, s, s + mins(20), [_c(t)], AMS)
    grace = periods_from_meter_values(samples, s, s + mins(20), [_c(t)], AMS, parking_grace_s=300)
    assert sum(p.parking_s for p in strict) == 120 and sum(p.parking_s for p in grace) == 0


def test_quote_same_path_as_session():
    t = tariff(
        [el(pc("FLAT", "0.50", "20"), pc("ENERGY", "0.25", "10"), pc("PARKING_TIME", "2.00", "20", 900))]
    )
    s = local("2026-01-05T10:00")
    q = quote(t, s, "20", timedelta(hours=1), AMS, parking_duration=mins(40))
    r = price_session(
        t, [charging(s, s + H, D(20000)), parking(s + H, s + H + mins(40))], s, s + H + mins(40), AMS
    )
    assert q.total_cost == r.total_cost and q.total_cost.excl_vat == D("7.00")


def test_grid_rules_hysteresis_and_hold():
    base = tariff([el(pc("ENERGY", "0.30"), pc("TIME", "1.00"))])
    high = GridRule.above(80, energy="0.10")
    low = GridRule.below(30, multiply="0.8")
    t0 = local("2026-01-05T10:00", "UTC")
    loads = [(t0 + mins(i * 5), D(x)) for i, x in enumerate([50, 85, 78, 74, 90, 20, 25, 32, 36, 50])]
    ch = price_changes(base, [high, low], loads, hysteresis=5, min_hold=mins(5))
    # 0 base; 5 high; 78 still holds (>= 75); 74 exits -> base at 15; 90 -> high at 20; 20 -> low at 25;
    # 32 holds (< 35); 36 exits -> base at 40.
    assert [(c.at - t0, c.rule.name if c.rule else None) for c in ch] == [
        (mins(0), None),
        (mins(5), "load>=80"),
        (mins(15), None),
        (mins(20), "load>=80"),
        (mins(25), "load<30"),
        (mins(40), None),
    ]
    prices = [v.elements[0].price_components[0].price for v in versions(ch)]
    assert prices == [D("0.30"), D("0.40"), D("0.30"), D("0.40"), D("0.240"), D("0.30")]
    assert ch[4].tariff.elements[0].price_components[1].price == D("0.800")
    held = price_changes(base, [high, low], loads, hysteresis=5, min_hold=mins(10))
    assert [c.at - t0 for c in held] == [mins(0), mins(20), mins(30), mins(40)]
    # the versions price a session 10:00-10:30 at 1 kWh per 5 min, each 5 min by the version then valid
    ps = [charging(t0 + mins(5 * i), t0 + mins(5 * i + 5), D(1000)) for i in range(6)]
    r = price_session(versions(ch), ps, t0, t0 + mins(30), "UTC")
    assert r.total_energy_cost.excl_vat == D("2.04")  # 0.30 + 0.40 + 0.40 + 0.30 + 0.40 + 0.24
    assert len(r.tariffs_used) == 5


def test_render_json_exact_and_complete():
    t = tariff([el(pc("FLAT", "0.50", "20"), pc("ENERGY", "0.25", "10"))], max_price={"excl_vat": "3"})
    s = local("2026-01-05T10:00")
    r = price_session(t, [charging(s, s + H, D(20000))], s, s + H, AMS)
    data = json.loads(render_json(r), parse_float=D)
    assert data["cdr"]["total_cost"] == {"excl_vat": D("3.00"), "incl_vat": D("3.33")}  # 3.00 x 6.10/5.50
    assert data["cdr"]["total_energy"] == D("20.000000")
    kinds = [ln["kind"] for ln in data["explanation"]["lines"]]
    assert kinds == ["component", "component", "MAX_PRICE"]
    assert sum(D(str(ln["amount_excl_vat"])) for ln in data["explanation"]["lines"]) == D("3.00")
    assert cdr_fields(r, with_periods=False)["total_fixed_cost"]["excl_vat"] == D("0.50")


def _c(t):
    from tariffs.core.compiled_tariff import compile_tariff

    return compile_tariff(t)
