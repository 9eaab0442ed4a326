"""An external CPO's CDR as the priced lines billing reads (a ``cdrs`` row's ``explanation["lines"]``, the format
:func:`tariffs.core.render.explanation` writes for the hub's own CDRs): the CPO's exact price, never re-priced.

Pure: no database, no clock.

* **Lines.** One per cost component the CDR gives, with its net excl. VAT as the CPO wrote it:
  ``total_energy_cost`` (dimension ``ENERGY``, quantity ``total_energy`` kWh), ``total_time_cost`` (``TIME``,
  the charging hours: ``total_time - total_parking_time``), ``total_parking_cost`` (``PARKING_TIME``,
  ``total_parking_time``), ``total_fixed_cost`` (``FLAT``, 1), ``total_reservation_cost`` (``RESERVATION_FLAT``,
  1). A component whose quantity is zero, and whatever ``total_cost`` holds beyond the components, is one
  ``FLAT`` line (a fee the components do not explain); a ``total_cost`` below its components (a ``max_price``
  cap) is one ``MAX_PRICE`` adjustment line. So the lines' net always adds up to ``total_cost.excl_vat`` to
  the cent: what the fleet is invoiced excl. VAT is the CPO's price.
* **Unit price**: the net over the quantity, to 4 decimals (OCPI numbers); shown, never multiplied out.
* **VAT**: the rate the CPO's own amounts imply, since a CDR names none: a rate ``r`` gives ``incl_vat`` of
  ``excl_vat`` when ``excl_vat * (1 + r)`` rounds to it in the currency (half-up), so each priced amount bounds
  ``r`` to an interval (:func:`vat_range`). The rate every component with ``incl_vat`` agrees on is used on every
  line, the simplest in their common interval (:func:`simplest_rate`: a whole percent if one is in it, else one
  or two decimals; 7.50 / 9.08, 2.00 / 2.42 and 0.50 / 0.61 are 21 %, although their sum 10.00 / 12.11 alone
  would say 21.1 %). Components that agree on none (say energy at 21 % and parking at 6 %) get each their own,
  the unexplained rest the total's; without any ``incl_vat`` the CPO said nothing about VAT: ``None`` ("no VAT
  applicable", billing's category outside the scope of VAT). Billing computes the invoice's VAT from these rates
  on its lines' net (EN 16931), so a CPO that rounded VAT per component may differ from it by a cent incl. VAT;
  the net excl. VAT is the CPO's to the cent.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from kernel.money import round_unit_price, rounding_rule
from ocpi.schemas.cdrs import OcpiCdr, Price

ONE = Decimal(1)
HUNDRED = Decimal(100)


def vat_range(excl: Decimal, incl: Decimal | None, currency: str) -> tuple[Decimal, Decimal] | None:
    """The VAT rates (percent, ``[low, high)``) under which ``excl`` rounds to ``incl`` in ``currency``; None
    without ``incl`` or when nothing is taxed."""
    if incl is None or excl == 0:
        return None
    excl, incl = abs(excl), abs(incl)
    half = rounding_rule(currency).increment / 2
    return ((incl - half) / excl * HUNDRED - HUNDRED, (incl + half) / excl * HUNDRED - HUNDRED)


def simplest_rate(low: Decimal, high: Decimal) -> Decimal | None:
    """The rate in ``[low, high)`` with the fewest decimals (0, 1, 2), nearest the middle; None when the range
    holds no rate of at most two decimals or none that is not negative."""
    low = max(low, Decimal(0))
    if low >= high:
        return None
    middle = (low + high) / 2
    for places in (0, 1, 2):
        step = ONE.scaleb(-places)
        for rate in (
            (middle / step).quantize(ONE, rounding=ROUND_HALF_UP) * step,
            (low / step).to_integral_value(rounding=ROUND_CEILING) * step,
        ):
            if low <= rate < high:
                return rate.quantize(step)
    return None


def _common(ranges: list[tuple[Decimal, Decimal]]) -> Decimal | None:
    if not ranges:
        return None
    return simplest_rate(max(r[0] for r in ranges), min(r[1] for r in ranges))


def _rate(excl: Decimal, incl: Decimal | None, currency: str) -> Decimal | None:
    found = vat_range(excl, incl, currency)
    if found is None:
        return None
    rate = simplest_rate(*found)
    return rate if rate is not None else ((found[0] + found[1]) / 2).quantize(Decimal("0.01"))


def _line(kind: str, dimension: str, quantity: Decimal, net: Decimal, vat: Decimal | None) -> dict[str, Any]:
    unit = round_unit_price(net / quantity) if kind == "component" and quantity else None
    return {
        "kind": kind,
        "dimension": dimension,
        "quantity": format(quantity, "f"),
        "unit_price": None if unit is None else format(unit, "f"),
        "vat": None if vat is None else format(vat, "f"),
        "amount_excl_vat": format(net, "f"),
        "source": "cpo",
    }


def _components(cdr: OcpiCdr) -> list[tuple[str, Decimal, Price | None]]:
    parking = cdr.total_parking_time or Decimal(0)
    return [
        ("ENERGY", cdr.total_energy, cdr.total_energy_cost),
        ("TIME", cdr.total_time - parking, cdr.total_time_cost),
        ("PARKING_TIME", parking, cdr.total_parking_cost),
        ("FLAT", ONE, cdr.total_fixed_cost),
        ("RESERVATION_FLAT", ONE, cdr.total_reservation_cost),
    ]


def cost_lines(cdr: OcpiCdr) -> list[dict[str, Any]]:
    """The priced lines of a (non-credit) CDR; their ``amount_excl_vat`` add up to ``total_cost.excl_vat``."""
    currency, total = cdr.currency, cdr.total_cost.excl_vat
    priced = [
        (dimension, quantity, price)
        for dimension, quantity, price in _components(cdr)
        if price is not None and price.excl_vat != 0 and quantity > 0
    ]
    ranges = [r for _, _, p in priced if (r := vat_range(p.excl_vat, p.incl_vat, currency)) is not None]
    common = _common(ranges)
    overall = common if common is not None else _rate(total, cdr.total_cost.incl_vat, currency)
    lines: list[dict[str, Any]] = []
    for dimension, quantity, price in priced:
        own = (
            common
            if common is not None or price.incl_vat is None
            else _rate(price.excl_vat, price.incl_vat, currency)
        )
        lines.append(
            _line("component", dimension, quantity, price.excl_vat, own if own is not None else overall)
        )
    unexplained = total - sum((p.excl_vat for _, _, p in priced), Decimal(0))
    if unexplained > 0 or not lines:
        lines.append(_line("component", "FLAT", ONE, unexplained, overall))
    elif unexplained < 0:
        lines.append(_line("MAX_PRICE", "ADJUSTMENT", ONE, unexplained, None))
    return lines


def price_explanation(cdr: OcpiCdr) -> dict[str, Any]:
    """What the stored row explains: the CPO's totals and the lines billing invoices."""
    return {
        "currency": cdr.currency,
        "priced_by": f"{cdr.country_code}*{cdr.party_id}",
        "lines": cost_lines(cdr),
    }
