from decimal import Decimal

import pytest
from pydantic import ValidationError

from tariffs.core.tariff_document import CdrDimensionType, DayOfWeek, TariffDimensionType
from tariffs.core.tariff_json import dumps, load_charging_periods, load_tariff, loads


def test_numbers_are_decimal_not_float():
    t = load_tariff(
        '{"country_code":"NL","party_id":"EVH","id":"1","currency":"eur","last_updated":'
        '"2026-01-01T00:00:00Z","max_price":{"excl_vat":10.10,"incl_vat":12.221},'
        '"elements":[{"price_components":[{"type":"ENERGY","price":0.1,"vat":21.0,"step_size":1}]}]}'
    )
    comp = t.elements[0].price_components[0]
    assert comp.price == Decimal("0.1") and isinstance(comp.price, Decimal)
    assert str(t.max_price.incl_vat) == "12.221"
    assert t.currency == "EUR"
    assert loads("0.1") == Decimal("0.1")


def test_lower_case_enums_and_extra_fields_tolerated(caplog):
    t = load_tariff(
        '{"country_code":"NL","party_id":"EVH","id":"1","currency":"EUR","x_vendor":1,'
        '"last_updated":"2026-01-01T00:00:00Z","elements":[{"price_components":[{"type":"energy",'
        '"price":"0.25","step_size":1}],"restrictions":{"day_of_week":["monday"],"foo":2}}]}'
    )
    assert t.elements[0].price_components[0].type is TariffDimensionType.ENERGY
    assert t.elements[0].restrictions.day_of_week == [DayOfWeek.MONDAY]
    assert "not upper case" in caplog.text


@pytest.mark.parametrize("bad", ["24:00", "7:00", "07:60"])
def test_invalid_time_of_day_rejected(bad):
    with pytest.raises(ValidationError):
        load_tariff(
            '{"country_code":"NL","party_id":"EVH","id":"1","currency":"EUR","last_updated":'
            '"2026-01-01T00:00:00Z","elements":[{"price_components":[{"type":"TIME","price":1,'
            f'"step_size":1}}],"restrictions":{{"start_time":"{bad}"}}}}]}}'
        )


def test_unknown_enum_rejected():
    with pytest.raises(ValidationError):
        load_tariff(
            '{"country_code":"NL","party_id":"EVH","id":"1","currency":"EUR","last_updated":'
            '"2026-01-01T00:00:00Z","elements":[{"price_components":[{"type":"KWH","price":1,'
            '"step_size":1}]}]}'
        )


def test_charging_periods_from_cdr_json():
    cps = load_charging_periods(
        '{"charging_periods":[{"start_date_time":"2026-01-01T10:00:00Z","dimensions":'
        '[{"type":"energy","volume":1.973},{"type":"MAX_POWER","volume":11}]}]}'
    )
    assert cps[0].volume(CdrDimensionType.ENERGY) == Decimal("1.973")
    assert cps[0].start_date_time.utcoffset().total_seconds() == 0


def test_dumps_keeps_exact_digits():
    assert dumps({"a": Decimal("0.10"), "b": Decimal("12.221")}) == '{"a": 0.10, "b": 12.221}'
    assert dumps({"a": Decimal("0.10")}, decimals_as="string") == '{"a": "0.10"}'
