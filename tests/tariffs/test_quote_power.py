"""T3 (issue #12): quotes used a power 1,000 times too small, so min_power/max_power elements never matched.

A quote's planned average power is the same kW the engine derives from meter values (one helper,
``charging_periods.average_power_kw``), so a quote equals the price of the same session priced from meters.
OCPI 2.2.1 TariffRestrictions ``min_power``: "Minimum power in kW, for example 5."
"""

from datetime import timedelta
from decimal import Decimal as D

from tariffs.core.charging_periods import average_power_kw
from tariffs.core.engine import price_session
from tariffs.core.meter_periods import MeterSample, periods_from_meter_values
from tariffs.core.quote import quote

from .tariff_helpers import el, local, pc, tariff

TZ = "Europe/Berlin"
START = local("2026-01-05T10:00", TZ)

# OCPI 2.2.1 examples/tariffrestriction_example_max_power.json
MAX_POWER = tariff(
    [
        el(pc("ENERGY", "0.20", "20"), max_power="16.00"),
        el(pc("ENERGY", "0.35", "20"), max_power="32.00"),
        el(pc("ENERGY", "0.50", "20")),
    ]
)


def test_average_power_is_kw():
    assert average_power_kw(D(30000), D(1800)) == D(60)
    assert average_power_kw(D(11000), D(3600)) == D(11)


def test_quote_60kw_matches_the_unrestricted_element():
    q = quote(MAX_POWER, START, "30", timedelta(minutes=30), TZ)
    assert q.total_cost.excl_vat == D("15.00")
    assert q.total_cost.incl_vat == D("18.00")


def test_quote_equals_price_from_meter_values():
    for kwh, minutes in (("30", 30), ("5", 60), ("12", 30), ("40", 120)):
        end = START + timedelta(minutes=minutes)
        samples = [MeterSample(START, D(0)), MeterSample(end, D(kwh) * 1000)]
        periods = periods_from_meter_values(samples, START, end, [], TZ)
        metered = price_session(MAX_POWER, periods, START, end, TZ)
        q = quote(MAX_POWER, START, kwh, timedelta(minutes=minutes), TZ)
        assert q.total_cost == metered.total_cost, (kwh, minutes)
