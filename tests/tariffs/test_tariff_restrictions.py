from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tariffs.core.restrictions import RESERVATION, Moment, restriction_matches
from tariffs.core.tariff_document import TariffRestrictions

from .tariff_helpers import local

AMS = ZoneInfo("Europe/Amsterdam")


def at(text: str, fold: int = 0, **kw) -> Moment:
    return Moment(local=local(text, fold=fold).astimezone(AMS), **kw)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-01-05T21:59", False),
        ("2026-01-05T22:00", True),
        ("2026-01-05T23:59", True),
        ("2026-01-06T00:00", True),
        ("2026-01-06T06:59", True),
        ("2026-01-06T07:00", False),
    ],
)
def test_window_crossing_midnight_end_exclusive(when, expected):
    r = TariffRestrictions(start_time="22:00", end_time="07:00")
    assert restriction_matches(r, at(when)) is expected


def test_end_time_midnight_means_end_of_day():
    r = TariffRestrictions(start_time="20:00", end_time="00:00")
    assert restriction_matches(r, at("2026-01-05T23:59"))
    assert not restriction_matches(r, at("2026-01-06T00:00"))
    assert not restriction_matches(r, at("2026-01-05T19:59"))


def test_dst_local_time_is_wall_clock():
    r = TariffRestrictions(start_time="02:00", end_time="03:00")
    # 2026-10-25: 02:30 happens twice in Amsterdam (CEST then CET); both are inside the window.
    assert restriction_matches(r, at("2026-10-25T02:30", fold=0))
    assert restriction_matches(r, at("2026-10-25T02:30", fold=1))
    # 2026-03-29 01:00 UTC is 03:00 CEST (02:xx does not exist): outside.
    from datetime import UTC, datetime

    m = Moment(local=datetime(2026, 3, 29, 1, 0, tzinfo=UTC).astimezone(AMS))
    assert m.local.hour == 3 and not restriction_matches(r, m)


def test_day_of_week_and_dates():
    r = TariffRestrictions(day_of_week=["SATURDAY", "SUNDAY"], start_date="2026-01-01", end_date="2026-02-01")
    assert restriction_matches(r, at("2026-01-03T12:00"))  # Saturday
    assert not restriction_matches(r, at("2026-01-05T12:00"))  # Monday
    assert restriction_matches(r, at("2026-01-31T23:59"))  # Saturday, last valid day
    assert not restriction_matches(r, at("2026-02-01T00:00"))  # end_date exclusive (Sunday)


def test_energy_duration_power_current_bounds():
    r = TariffRestrictions(min_kwh=Decimal(10), max_kwh=Decimal(20))
    assert not restriction_matches(r, at("2026-01-05T12:00", energy_wh=Decimal("9999.9")))
    assert restriction_matches(r, at("2026-01-05T12:00", energy_wh=Decimal(10000)))
    assert not restriction_matches(r, at("2026-01-05T12:00", energy_wh=Decimal(20000)))
    r = TariffRestrictions(min_duration=1800, max_duration=3600)
    assert not restriction_matches(r, at("2026-01-05T12:00", elapsed_s=Decimal(1799)))
    assert restriction_matches(r, at("2026-01-05T12:00", elapsed_s=Decimal(1800)))
    assert not restriction_matches(r, at("2026-01-05T12:00", elapsed_s=Decimal(3600)))
    r = TariffRestrictions(min_power=Decimal(16), max_current=Decimal(32))
    assert restriction_matches(r, at("2026-01-05T12:00", power_kw=Decimal(16), current_a=Decimal("31.9")))
    assert not restriction_matches(r, at("2026-01-05T12:00", power_kw=Decimal("15.9"), current_a=Decimal(1)))
    assert not restriction_matches(r, at("2026-01-05T12:00", power_kw=Decimal(20), current_a=Decimal(32)))
    assert not restriction_matches(r, at("2026-01-05T12:00"))  # unknown power/current


def test_reservation_elements_only_apply_to_reservations():
    plain = TariffRestrictions()
    res = TariffRestrictions(reservation="RESERVATION")
    assert restriction_matches(plain, at("2026-01-05T12:00"))
    assert not restriction_matches(plain, at("2026-01-05T12:00", reservation=RESERVATION))
    assert restriction_matches(res, at("2026-01-05T12:00", reservation=RESERVATION))
    assert not restriction_matches(res, at("2026-01-05T12:00"))
