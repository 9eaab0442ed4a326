"""The shape checker itself (tests/ocpi/_shapes.py): a number is an int, a float or a Decimal, its decimals
counted alike, so the hub's objects (Decimals) and parsed JSON (floats, or Decimals from kernel.jsonutil) are
checked the same (the 2.1.1 translation tests, tests/ocpi/test_v211_objects.py, check Decimals)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kernel import jsonutil
from tests.ocpi._shapes import assert_exact, check

PRICE = "PriceComponent"


@pytest.mark.parametrize("version", ["2.2.1", "2.1.1"])
@pytest.mark.parametrize("price", [2, 2.5, Decimal("2.50"), Decimal("-0.1234"), Decimal("4")])
def test_a_number_may_be_an_int_a_float_or_a_decimal(version: str, price: object) -> None:
    assert check({"type": "ENERGY", "price": price, "step_size": 1}, PRICE, version) == []


@pytest.mark.parametrize("version", ["2.2.1", "2.1.1"])
def test_a_decimal_has_at_most_4_decimals_like_a_float(version: str) -> None:
    where = f"{PRICE}.price"
    assert check({"type": "ENERGY", "price": Decimal("0.12345"), "step_size": 1}, PRICE, version) == [
        f"{where}: 0.12345 has more than 4 decimals"
    ]
    assert check({"type": "ENERGY", "price": 0.12345, "step_size": 1}, PRICE, version) == [
        f"{where}: 0.12345 has more than 4 decimals"
    ]
    parsed = jsonutil.loads('{"type": "ENERGY", "price": 0.123450, "step_size": 1}')
    assert check(parsed, PRICE, version) == [f"{where}: 0.123450 has more than 4 decimals"]


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        ("2.00", "expected a JSON number, got str '2.00'"),
        (True, "expected a JSON number, got bool True"),
        (Decimal("NaN"), "Decimal('NaN') is not a JSON number"),
        (Decimal("Infinity"), "Decimal('Infinity') is not a JSON number"),
    ],
)
def test_what_is_not_a_json_number_is_refused(price: object, problem: str) -> None:
    assert check({"type": "ENERGY", "price": price, "step_size": 1}, PRICE, "2.1.1") == [
        f"{PRICE}.price: {problem}"
    ]


def test_assert_exact_names_every_problem() -> None:
    assert_exact(
        {"total_cost": Decimal("4.00"), "last_updated": "2015-06-29T22:01:13Z"},
        "Session",
        "2.1.1",
        partial=True,
    )
    with pytest.raises(
        AssertionError, match=r"Session\.kwh: expected a JSON number.*Session\.total_cost: null"
    ):
        assert_exact({"kwh": "1", "total_cost": None}, "Session", "2.1.1", partial=True)
