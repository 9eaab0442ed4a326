"""T7 (issue #12): reservations were never billed, and an expired reservation could not be expressed on the
OCPI/CLI input path (examples 17/18 priced 2.00/4.50 instead of 6.00/9.00).

OCPI 2.2.1 mod_tariffs, TariffRestrictions ``reservation``: "A reservation starts when the reservation is
made, and ends when the driver starts charging on the reserved EVSE/Location, or when the reservation
expires."; ReservationRestrictionType RESERVATION_EXPIRES: "costs for a reservation that expires (i.e. driver
does not start a charging session before expiry_date of the reservation)". mod_cdrs: ``start_date_time`` "in-case
of a reservation (before the start of a session) the start of the reservation"; ``session_id`` "Is only
allowed to be omitted when ... this CDR is the result of a reservation that never became a charging session".

The four tariffs are the spec's examples 15-18 (tag 2.2.1, ``examples/tariff_1[5-8]_*.json``), verbatim.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from tariffs.core.charging_periods import charging, reservation
from tariffs.core.engine import price_session
from tariffs.core.ocpi_periods import periods_from_ocpi
from tariffs.core.tariff_document import ChargingPeriod, Tariff
from tariffs.core.tariff_json import load_tariff

EXAMPLE_15 = """{
  "country_code": "DE",
  "party_id": "ALL",
  "id": "20",
  "currency": "EUR",
  "elements": [{
    "price_components": [{
      "type": "TIME",
      "price": 5.00,
      "vat": 20.0,
      "step_size": 60
    }],
    "restrictions": {
      "reservation": "RESERVATION"
    }
  }, {
    "price_components": [{
      "type": "FLAT",
      "price": 0.50,
      "vat": 20.0,
      "step_size": 1
    }, {
      "type": "ENERGY",
      "price": 0.25,
      "vat": 10.0,
      "step_size": 1
    }]
  }],
  "last_updated": "2019-02-03T17:00:11Z"
}"""
EXAMPLE_16 = """{
  "country_code": "DE",
  "party_id": "ALL",
  "id": "20",
  "currency": "EUR",
  "elements": [{
    "price_components": [{
      "type": "FLAT",
      "price": 2.00,
      "vat": 20.0,
      "step_size": 1
    }, {
      "type": "TIME",
      "price": 5.00,
      "vat": 20.0,
      "step_size": 300
    }],
    "restrictions": {
      "reservation": "RESERVATION"
    }
  }, {
    "price_components": [{
      "type": "FLAT",
      "price": 0.50,
      "vat": 20.0,
      "step_size": 1
    }, {
      "type": "ENERGY",
      "price": 0.25,
      "vat": 10.0,
      "step_size": 1
    }]
  }],
  "last_updated": "2019-02-03T17:00:11Z"
}"""
EXAMPLE_17 = """{
  "country_code": "DE",
  "party_id": "ALL",
  "id": "20",
  "currency": "EUR",
  "elements": [{
    "price_components": [{
      "type": "FLAT",
      "price": 4.00,
      "vat": 20.0,
      "step_size": 1
    }],
    "restrictions": {
      "reservation": "RESERVATION_EXPIRES"
    }
  }, {
    "price_components": [{
      "type": "TIME",
      "price": 2.00,
      "vat": 20.0,
      "step_size": 600
    }],
    "restrictions": {
      "reservation": "RESERVATION"
    }
  }, {
    "price_components": [{
      "type": "FLAT",
      "price": 0.50,
      "vat": 20.0,
      "step_size": 1
    }, {
      "type": "ENERGY",
      "price": 0.25,
      "vat": 10.0,
      "step_size": 1
    }]
  }],
  "last_updated": "2019-02-03T17:00:11Z"
}"""
EXAMPLE_18 = """{
  "country_code": "DE",
  "party_id": "ALL",
  "id": "20",
  "currency": "EUR",
  "elements": [{
    "price_components": [{
      "type": "TIME",
      "price": 6.00,
      "vat": 20.0,
      "step_size": 600
    }],
    "restrictions": {
      "reservation": "RESERVATION_EXPIRES"
    }
  }, {
    "price_components": [{
      "type": "TIME",
      "price": 3.00,
      "vat": 20.0,
      "step_size": 600
    }],
    "restrictions": {
      "reservation": "RESERVATION"
    }
  }, {
    "price_components": [{
      "type": "FLAT",
      "price": 0.50,
      "vat": 20.0,
      "step_size": 1
    }, {
      "type": "ENERGY",
      "price": 0.25,
      "vat": 10.0,
      "step_size": 1
    }]
  }],
  "last_updated": "2019-02-03T17:00:11Z"
}"""
EXAMPLES = {15: EXAMPLE_15, 16: EXAMPLE_16, 17: EXAMPLE_17, 18: EXAMPLE_18}

MADE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the reservation is made (the charger accepted it)
TZ = "Europe/Berlin"


def example(n: int) -> Tariff:
    return load_tariff(EXAMPLES[n])


def cp(at: datetime, **volumes: str) -> ChargingPeriod:
    return ChargingPeriod.model_validate(
        {
            "start_date_time": at.isoformat(),
            "dimensions": [{"type": k, "volume": v} for k, v in volumes.items()],
        }
    )


def total(r) -> tuple[D, D]:  # type: ignore[no-untyped-def]
    return r.total_cost.excl_vat, r.total_cost.incl_vat


# "For a charging session that was started N minutes after the reservation time, where the driver charges
# 20 kWh, this tariff will result in costs of X euro (excl. VAT) or Y euro (incl. VAT)."
USED = [
    (15, 15, D("6.75"), D("7.60")),
    (16, 13, D("8.75"), D("10.00")),
    (17, 22, D("6.50"), D("7.30")),
    (18, 22, D("7.00"), D("7.90")),
]
# "If the driver did not start a charging session and the reservation expired after the reserved time of
# 1 hour [1.5 hours], the tariff would have resulted in costs of 6.00 [9.00] euro (excl. VAT) or 7.20 [10.80]
# euro (incl. VAT)."
EXPIRED = [(17, 60, D("6.00"), D("7.20")), (18, 90, D("9.00"), D("10.80"))]


@pytest.mark.parametrize(("n", "minutes", "excl", "incl"), USED)
def test_used_reservation_examples_through_engine_periods(n: int, minutes: int, excl: D, incl: D) -> None:
    """T7: a reservation followed by a charging session is billed with the RESERVATION elements from the
    reservation's start to the session's start (spec examples 15-18, "used")."""
    start = MADE + timedelta(minutes=minutes)
    end = start + timedelta(hours=1)
    periods = [reservation(MADE, start), charging(start, end, D(20000))]
    assert total(price_session(example(n), periods, start, end, TZ)) == (excl, incl)


@pytest.mark.parametrize(("n", "minutes", "excl", "incl"), USED)
def test_used_reservation_examples_through_ocpi_periods(n: int, minutes: int, excl: D, incl: D) -> None:
    """T7: the same CDRs in their OCPI form (a RESERVATION_TIME period before the session's periods, the CDR
    starting at the reservation's start) price the same; a reservation followed by charging is never taken
    for an expired one."""
    start = MADE + timedelta(minutes=minutes)
    end = start + timedelta(hours=1)
    cps = [cp(MADE, RESERVATION_TIME=str(D(minutes) / 60)), cp(start, ENERGY="20", TIME="1")]
    periods = periods_from_ocpi(cps, end)
    assert [p.expired for p in periods] == [False, False]
    assert total(price_session(example(n), cps, MADE, end, TZ)) == (excl, incl)


def test_example_16_reservation_cost_is_fee_plus_three_steps() -> None:
    """T7: example 16 bills 15 minutes of reservation (per 5 min) for a start 13 minutes after the
    reservation plus the 2.00 fee: total_reservation_cost 3.25 excl. VAT; the start fee stays fixed cost."""
    start = MADE + timedelta(minutes=13)
    r = price_session(example(16), [reservation(MADE, start), charging(start, start + timedelta(hours=1), 20000)],
                      start, start + timedelta(hours=1), TZ)  # fmt: skip
    assert r.total_reservation_cost.excl_vat == D("3.25")
    assert r.total_fixed_cost.excl_vat == D("0.50")


@pytest.mark.parametrize(("n", "minutes", "excl", "incl"), EXPIRED)
def test_expired_reservation_examples_through_engine_periods(n: int, minutes: int, excl: D, incl: D) -> None:
    """T7: a reservation that expired unused is billed with the RESERVATION_EXPIRES elements (and, for the
    time example 17 has none of, with the RESERVATION ones), without the session's start fee."""
    expiry = MADE + timedelta(minutes=minutes)
    periods = [reservation(MADE, expiry, expired=True)]
    assert total(price_session(example(n), periods, MADE, expiry, TZ)) == (excl, incl)


@pytest.mark.parametrize(("n", "minutes", "excl", "incl"), EXPIRED)
def test_ocpi_cdr_with_only_reservation_time_is_an_expired_reservation(
    n: int, minutes: int, excl: D, incl: D
) -> None:
    """T7, the OCPI input rule: a CDR whose charging periods carry only RESERVATION_TIME (no ENERGY, TIME
    or PARKING_TIME anywhere) is a reservation that never became a charging session, so RESERVATION_EXPIRES
    elements match: 6.00 / 9.00, not the 2.00 / 4.50 of the RESERVATION elements alone."""
    expiry = MADE + timedelta(minutes=minutes)
    cps = [cp(MADE, RESERVATION_TIME=str(D(minutes) / 60))]
    assert [p.expired for p in periods_from_ocpi(cps, expiry)] == [True]
    assert total(price_session(example(n), cps, MADE, expiry, TZ)) == (excl, incl)


def test_expired_inference_can_be_overridden() -> None:
    """T7: ``reservation_expired=False`` prices reservation time as an ordinary reservation (2.00 for example
    17's hour: what every OCPI input priced before the rule); True forces the expired reading."""
    expiry = MADE + timedelta(hours=1)
    cps = [cp(MADE, RESERVATION_TIME="1")]
    as_reserved = periods_from_ocpi(cps, expiry, reservation_expired=False)
    assert total(price_session(example(17), as_reserved, MADE, expiry, TZ)) == (D("2.00"), D("2.40"))
    start = MADE + timedelta(minutes=22)
    used = [cp(MADE, RESERVATION_TIME="0.366667"), cp(start, ENERGY="20", TIME="1")]
    forced = periods_from_ocpi(used, start + timedelta(hours=1), reservation_expired=True)
    assert [p.expired for p in forced] == [True, False]
