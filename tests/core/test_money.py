"""The one rounding policy and proportional allocation."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.money import Money, MoneyError, allocate, minor_units, reset_rounding, round_amount, set_rounding


def test_round_half_up_by_minor_unit() -> None:
    assert round_amount(Decimal("1.005"), "EUR") == Decimal("1.01")
    assert round_amount(Decimal("1.004999"), "eur") == Decimal("1.00")
    assert round_amount(Decimal("-1.005"), "EUR") == Decimal("-1.01")
    assert round_amount(Decimal("1234.5"), "JPY") == Decimal("1235")
    assert round_amount(Decimal("0.0005"), "KWD") == Decimal("0.001")
    assert minor_units("BHD") == 3


def test_currency_override() -> None:
    try:
        set_rounding("CHF", "0.05")
        assert round_amount(Decimal("1.024"), "CHF") == Decimal("1.00")
        assert round_amount(Decimal("1.025"), "CHF") == Decimal("1.05")
    finally:
        reset_rounding()
    assert round_amount(Decimal("1.024"), "CHF") == Decimal("1.02")


def test_floats_and_bad_currencies_are_refused() -> None:
    with pytest.raises(MoneyError):
        Money(0.1, "EUR")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(Decimal(1), "EURO")
    with pytest.raises(MoneyError):
        Money(Decimal(1), "EUR") + Money(Decimal(1), "USD")


@given(
    total=st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=2),
    weights=st.lists(
        st.decimals(min_value=Decimal(0), max_value=Decimal(1000), places=3), min_size=1, max_size=8
    ),
)
def test_allocate_parts_add_up(total: Decimal, weights: list[Decimal]) -> None:
    parts = allocate(total, weights, "EUR")
    assert sum(parts, Decimal(0)) == total
    assert all(p == round_amount(p, "EUR") for p in parts)
    if sum(weights) > 0:
        for part, weight in zip(parts, weights, strict=True):
            exact = abs(total) * weight / sum(weights)
            assert abs(abs(part) - exact) < Decimal("0.01")
