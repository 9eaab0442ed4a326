"""Energy quantities: the one place an amount of energy is rounded (to the watt-hour, half-up).

Energy is measured in Wh by meters and shown in kWh; the pricing engine keeps it exact. Where a kWh figure is
shown to people (receipts, portal, demo) or fed to settlement (integer Wh), it is rounded here.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from kernel.money import to_decimal

_WH = Decimal("0.001")


def kwh_to_the_wh(kwh: Decimal | int | str) -> Decimal:
    """``kwh`` rounded to the watt-hour (3 decimals of kWh), half-up."""
    return to_decimal(kwh).quantize(_WH, rounding=ROUND_HALF_UP)


def format_kwh(kwh: Decimal | int | str) -> str:
    """``12.3456`` -> ``"12.346"``: kWh for people, to the watt-hour."""
    return f"{kwh_to_the_wh(kwh)}"
