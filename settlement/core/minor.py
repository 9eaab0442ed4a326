"""Integer minor units: the exact, vectorised form of :mod:`kernel.money` used by the settlement engine.

The split works on ``int64`` arrays of minor units (cents for EUR, yen for JPY, fils for BHD) because that is
exact and fast. This module is the bridge to the one money policy in :mod:`kernel.money`:

* :func:`to_minor` / :func:`from_minor` convert one Decimal amount <-> integer minor units using
  :func:`kernel.money.minor_units`; a Decimal with more decimals than the currency has is refused (a CDR
  amount is already a rounded line, we never re-round it silently).
* :func:`rounding_step` is the currency's rounding increment in minor units (1 for cents, 5 for a CHF 0.05
  override set with :func:`kernel.money.set_rounding`). Only ``ROUND_HALF_UP`` can be vectorised; any other
  mode raises :class:`NotImplementedError` rather than silently differing from :func:`kernel.money.round_amount`.
* :func:`round_half_up` rounds exact fractions ``num / den`` (non-negative) half-up to a multiple of that
  step: the same result as ``round_amount(Decimal(num) / den / 10**minor_units, currency)`` (property-tested).
* :func:`scaled` turns a Decimal rate into an exact integer numerator over ``10**scale``.

Amounts are never floats. When an intermediate product could leave ``int64`` the helpers switch to numpy
object arrays of Python ints (exact, slower) instead of overflowing.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from kernel.money import MoneyError, minor_units, normalize_currency, rounding_rule, to_decimal

#: Products are kept in int64 only while they stay below this bound (headroom for ``2 * num + den``).
INT64_SAFE = 2**61


def to_minor(amount: Decimal | int | str, currency: str) -> int:
    """Exact integer minor units of ``amount``; :class:`MoneyError` if it has more decimals than the currency."""
    value = to_decimal(amount).scaleb(minor_units(currency))
    if value != value.to_integral_value():
        raise MoneyError(f"{amount} has more decimals than {normalize_currency(currency)} allows")
    return int(value)


def from_minor(units: int, currency: str) -> Decimal:
    """The Decimal amount of ``units`` minor units, with exactly the currency's number of decimals."""
    return Decimal(int(units)).scaleb(-minor_units(currency))


def format_minor(units: int, currency: str) -> str:
    """Canonical text of an amount: plain digits, the currency's decimals, no exponent ("-12.30")."""
    return f"{from_minor(units, currency):f}"


def rounding_step(currency: str) -> int:
    """The currency's rounding increment in minor units (from :func:`kernel.money.rounding_rule`)."""
    rule = rounding_rule(currency)
    if rule.mode != ROUND_HALF_UP:
        raise NotImplementedError(f"vectorised rounding supports ROUND_HALF_UP only, not {rule.mode}")
    step = rule.increment.scaleb(minor_units(currency))
    if step != step.to_integral_value() or step < 1:
        raise NotImplementedError(
            f"rounding increment {rule.increment} is finer than {currency}'s minor unit"
        )
    return int(step)


def decimals_needed(value: Decimal) -> int:
    """How many decimal places ``value`` needs to be written exactly (0 for integers)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def scale_for(values: Iterable[Decimal | None], extra: int = 0) -> int:
    """The smallest decimal scale that writes every value exactly, plus ``extra``."""
    return max((decimals_needed(v) for v in values if v is not None), default=0) + extra


def scaled(value: Decimal | None, scale: int) -> int:
    """``value * 10**scale`` as an exact int (``None`` -> 0); ValueError if the scale is too small."""
    if value is None:
        return 0
    out = to_decimal(value).scaleb(scale)
    if out != out.to_integral_value():
        raise ValueError(f"{value} is not exact at scale {scale}")
    return int(out)


def _max_abs(x: np.ndarray | int) -> int:
    arr = np.asarray(x)
    if arr.size == 0:
        return 0
    return int(max(abs(int(arr.max())), abs(int(arr.min()))))


def exact(*terms: tuple[np.ndarray | int, np.ndarray | int]) -> np.ndarray:
    """Sum of products ``a * b`` computed exactly: int64 when provably safe, else Python-int object arrays."""
    bound = sum(_max_abs(a) * _max_abs(b) for a, b in terms)
    dtype = np.int64 if bound < INT64_SAFE else object
    total: np.ndarray | int = 0
    for a, b in terms:
        total = total + np.asarray(a).astype(dtype, copy=False) * np.asarray(b).astype(dtype, copy=False)
    return np.asarray(total)


def round_half_up(num: np.ndarray, den: np.ndarray | int, step: np.ndarray | int) -> np.ndarray:
    """Round the non-negative fractions ``num / den`` half-up to a multiple of ``step`` (all integers).

    ``den`` must be positive. Returns int64 minor units. Half-up on a non-negative value is
    ``floor(x / step + 1/2) * step``, computed as ``(2*num + den*step) // (2*den*step)``.
    """
    num = np.asarray(num)
    bound = 2 * _max_abs(num) + 2 * _max_abs(den) * _max_abs(step)
    dtype = np.int64 if bound < INT64_SAFE and num.dtype != object else object
    n = num.astype(dtype, copy=False)
    d = np.asarray(den).astype(dtype, copy=False)
    s = np.asarray(step).astype(dtype, copy=False)
    out = ((2 * n + d * s) // (2 * d * s)) * s
    return np.asarray(out).astype(np.int64, copy=False)
