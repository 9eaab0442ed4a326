"""Money: exact amounts that always carry their currency, and the hub's one rounding policy.

Every amount in evhub is a :class:`decimal.Decimal` paired with an ISO 4217 currency code; floats never
touch money. Rounding happens only here:

* :func:`minor_units` gives a currency's number of decimals (ISO 4217; e.g. EUR 2, JPY 0, BHD 3).
* :func:`round_amount` rounds an amount to those decimals with ``ROUND_HALF_UP`` (commercial rounding),
  unless a per-currency override was registered with :func:`set_rounding` (e.g. Swiss francs to 0.05).
* :func:`allocate` splits a rounded total into rounded parts proportionally to weights such that the parts
  add up to the total exactly (largest-remainder method, ties broken by position for reproducibility).

Intermediate results (price x quantity) are kept unrounded; a line is rounded once when it becomes a line,
and totals are the sums of rounded lines, so lines always add up to their totals.

Prices per unit (a tariff's price component, its min/max price) are OCPI numbers: at most
:data:`UNIT_PRICE_PLACES` (4) decimals. :func:`has_unit_price_places` checks one; :func:`round_unit_price` is
the one place a computed unit price (a grid rule's) is rounded to them, ``ROUND_HALF_UP``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

import pycountry

# ISO 4217 minor units for the currencies that differ from the default of 2.
_MINOR_UNITS: dict[str, int] = {
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
}


@dataclass(frozen=True)
class RoundingRule:
    """How one currency's amounts are rounded: to a multiple of ``increment`` with ``mode``."""

    increment: Decimal
    mode: str = ROUND_HALF_UP


_OVERRIDES: dict[str, RoundingRule] = {}


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


@cache
def _iso4217_codes() -> frozenset[str]:
    """Every active ISO 4217 alphabetic code, from pycountry's copy of the standard."""
    return frozenset(c.alpha_3 for c in pycountry.currencies)


def normalize_currency(currency: str) -> str:
    """Return the upper-cased ISO 4217 code, or raise :class:`MoneyError` for anything that is not one."""
    code = (currency or "").strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise MoneyError(f"invalid currency code {currency!r}: expected 3 letters (ISO 4217)")
    if code not in _iso4217_codes():
        raise MoneyError(f"unknown currency {currency!r}: not an ISO 4217 code")
    return code


def minor_units(currency: str) -> int:
    """Number of decimals of the currency's minor unit (ISO 4217)."""
    return _MINOR_UNITS.get(normalize_currency(currency), 2)


def rounding_rule(currency: str) -> RoundingRule:
    """The rule in force for ``currency``: an override if one was set, else its minor unit, half-up."""
    code = normalize_currency(currency)
    rule = _OVERRIDES.get(code)
    if rule is not None:
        return rule
    return RoundingRule(increment=Decimal(1).scaleb(-minor_units(code)))


def set_rounding(currency: str, increment: Decimal | str, mode: str = ROUND_HALF_UP) -> None:
    """Override the rounding of one currency (e.g. ``set_rounding("CHF", "0.05")``)."""
    inc = to_decimal(increment)
    if inc <= 0:
        raise MoneyError("rounding increment must be positive")
    _OVERRIDES[normalize_currency(currency)] = RoundingRule(increment=inc, mode=mode)


def reset_rounding() -> None:
    """Drop every override (tests)."""
    _OVERRIDES.clear()


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Convert an exact value to Decimal. Floats are refused: they are not exact."""
    if isinstance(value, (bool, float)):
        raise MoneyError(f"refusing float/bool {value!r} as an exact amount; pass a str or Decimal")
    if isinstance(value, Decimal):
        result = value
    else:
        try:
            result = Decimal(value)
        except (InvalidOperation, ValueError, TypeError) as exc:
            raise MoneyError(f"not a decimal amount: {value!r}") from exc
    if not result.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return result


def parse_amount(value: Decimal | int | str, currency: str, *, allow_negative: bool = False) -> Decimal:
    """An amount entered by a user or a partner, exact to the currency's minor unit, or :class:`MoneyError`.

    Input is validated, never rounded: ``10.005`` EUR is refused rather than silently becoming ``10.01``.
    """
    amount = to_decimal(value)
    places = minor_units(currency)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise MoneyError(
            f"amount {value} has more decimals than {normalize_currency(currency)} has minor units ({places})"
        )
    if amount < 0 and not allow_negative:
        raise MoneyError(f"amount {value} must not be negative")
    return amount.quantize(Decimal(1).scaleb(-places))


def round_amount(amount: Decimal | int | str, currency: str) -> Decimal:
    """Round ``amount`` by the currency's rule. The only place money is rounded."""
    rule = rounding_rule(currency)
    value = to_decimal(amount)
    steps = (value / rule.increment).quantize(Decimal(1), rounding=rule.mode)
    exponent = rule.increment.as_tuple().exponent
    places = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    return (steps * rule.increment).quantize(places)


UNIT_PRICE_PLACES = 4
"""Decimals of an OCPI price per unit (OCPI 2.2.1 types, number: "Unless mentioned otherwise, numbers use 4
decimals")."""
_UNIT_PRICE_STEP = Decimal(1).scaleb(-UNIT_PRICE_PLACES)


def has_unit_price_places(price: Decimal) -> bool:
    """``price`` (finite) has at most :data:`UNIT_PRICE_PLACES` significant decimals (``0.30000`` has one)."""
    return price == price.quantize(_UNIT_PRICE_STEP, rounding=ROUND_HALF_UP)


def round_unit_price(price: Decimal) -> Decimal:
    """A computed price per unit to :data:`UNIT_PRICE_PLACES` decimals, ``ROUND_HALF_UP``; a price that already
    has them comes back unchanged (same digits)."""
    if has_unit_price_places(price):
        return price
    return price.quantize(_UNIT_PRICE_STEP, rounding=ROUND_HALF_UP)


def allocate(total: Decimal, weights: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Split a rounded ``total`` into rounded parts proportional to ``weights`` that sum to ``total``.

    Largest-remainder method: every part is first rounded toward zero to the currency's increment, then the
    remaining increments go to the parts with the largest remainders (earlier positions win ties). Weights may
    be zero; if all are zero the whole total goes to the first part.
    """
    if not weights:
        raise MoneyError("allocate needs at least one weight")
    rule = rounding_rule(currency)
    total = round_amount(total, currency)
    wsum = sum((to_decimal(w) for w in weights), Decimal(0))
    if wsum == 0:
        return [total] + [Decimal(0) * total for _ in weights[1:]]
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    raw = [magnitude * to_decimal(w) / wsum for w in weights]
    floors = [(r / rule.increment).to_integral_value(rounding=ROUND_DOWN) * rule.increment for r in raw]
    leftover_steps = int(((magnitude - sum(floors, Decimal(0))) / rule.increment).to_integral_value())
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    for i in order[:leftover_steps]:
        floors[i] += rule.increment
    return [round_amount(sign * f, currency) for f in floors]


def format_amount(amount: Decimal | int | str, currency: str) -> str:
    """``150`` EUR -> ``"150.00 EUR"``: an amount shown with (at least) its currency's decimals, for people."""
    value = to_decimal(amount)
    places = minor_units(currency)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < places:
        value = value.quantize(Decimal(1).scaleb(-places))
    return f"{value} {normalize_currency(currency)}"


@dataclass(frozen=True, order=True)
class Money:
    """An exact amount in one currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", to_decimal(self.amount))
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money) or other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {getattr(other, 'currency', other)!r}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def times(self, factor: Decimal | int | str) -> Money:
        """Unrounded product; call :meth:`rounded` when it becomes a line."""
        return Money(self.amount * to_decimal(factor), self.currency)

    def rounded(self) -> Money:
        return Money(round_amount(self.amount, self.currency), self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def rounder(currency: str) -> Callable[[Decimal], Decimal]:
    """A fast rounding function for hot loops: the rule in force for ``currency`` *now*, fixed.

    ``rounder(c)(x) == round_amount(x, c)`` for every Decimal ``x`` (same rule, same mode); obtain a new one after
    :func:`set_rounding` changes the rule.
    """
    rule = rounding_rule(currency)
    inc, mode = rule.increment, rule.mode
    exponent = inc.as_tuple().exponent
    places = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    if inc == places:
        return lambda value: value.quantize(places, rounding=mode)
    one = Decimal(1)
    return lambda value: ((value / inc).quantize(one, rounding=mode) * inc).quantize(places)
