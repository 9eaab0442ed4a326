"""The EN 16931 arithmetic of a VAT invoice: category VAT (BR-CO-17) and the document totals (BR-CO-10..16).

Business terms (EN 16931-1): BT-106 sum of line net amounts, BT-109 total without VAT, BT-110 total VAT,
BT-112 total with VAT, BT-114 rounding amount, BT-115 amount due. evhub issues no document-level allowances or
charges (BT-107, BT-108 are zero), so BT-109 = BT-106. Every amount is rounded by :mod:`kernel.money` (half up,
the currency's minor unit); EN 16931 allows at most 2 decimals (BR-DEC-*), so a currency with more minor units
(BHD, KWD ...) cannot be invoiced.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from kernel.money import minor_units, normalize_currency, round_amount, rounding_rule

ZERO = Decimal(0)
HUNDRED = Decimal(100)
MAX_DECIMALS = 2
"""BR-DEC-*: the most decimals an EN 16931 amount may have."""


def invoice_currency(currency: str) -> str:
    """The ISO 4217 code, or ValueError when EN 16931 cannot carry its amounts (more than 2 decimals)."""
    code = normalize_currency(currency)
    if minor_units(code) > MAX_DECIMALS:
        raise ValueError(
            f"{code} has {minor_units(code)} decimals; EN 16931 amounts have at most {MAX_DECIMALS}"
        )
    return code


def is_rounded(amount: Decimal, currency: str) -> bool:
    """Whether ``amount`` is already a rounded amount of ``currency`` (kernel.money's rule)."""
    return amount == round_amount(amount, currency)


def category_tax(taxable: Decimal, rate: Decimal, currency: str) -> Decimal:
    """BR-CO-17: VAT category tax amount = taxable amount x (rate / 100), rounded (half up, kernel.money)."""
    return round_amount(taxable * rate / HUNDRED, currency)


def minor_unit(currency: str) -> Decimal:
    """One rounding increment of ``currency`` (0.01 EUR, 1 JPY, 0.05 CHF when so overridden)."""
    return rounding_rule(currency).increment


def total(amounts: Iterable[Decimal], currency: str) -> Decimal:
    """An exact sum of rounded amounts, at the currency's precision (``0.00`` for nothing in EUR)."""
    return round_amount(ZERO, currency) + sum(amounts, ZERO)
