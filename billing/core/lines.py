"""Priced CDRs -> invoice lines, to the cent, and the monthly invoice's grouping per driver and vehicle.

A :class:`PricedCdr` is the small typed input billing needs from a CDR (an adapter builds it from a ``cdrs``
row next session): its ids, currency, period, totals and its **components**, one per rounded cost line of the
pricing engine (the CDR's explanation ``lines``: dimension, billed quantity in kWh / hours / 1, unit price,
tariff VAT, net) plus the min/max price adjustment, if any. The components' net amounts add up to the CDR's
``total_cost.excl_vat`` exactly; :class:`PricedCdr` refuses any that do not.

:func:`cdr_lines` gives one invoice line per component and VAT class, with the CDR's own amounts (never
re-priced or re-rounded), so **the lines' net equals the CDR's total excl. VAT to the cent**. A min/max price
adjustment has no VAT of its own: it is split over the CDR's (category, rate) classes in proportion to their
net (:func:`kernel.money.allocate`, so the parts add up to it). A credit CDR (a correction) gives the same
lines negated: negative quantity, same unit price, negative net.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing.core.documents import DocumentError, InvoiceLine, SupplyPeriod, Unit, VatCategory
from billing.core.en16931 import invoice_currency, is_rounded, total
from billing.core.vat import NORMAL, VatTreatment, classify
from kernel.money import allocate


class Dimension(StrEnum):
    """What a CDR component bills (OCPI tariff dimensions; ADJUSTMENT is a min/max price line)."""

    ENERGY = "ENERGY"
    TIME = "TIME"
    PARKING_TIME = "PARKING_TIME"
    FLAT = "FLAT"
    RESERVATION_TIME = "RESERVATION_TIME"
    RESERVATION_FLAT = "RESERVATION_FLAT"
    ADJUSTMENT = "ADJUSTMENT"


UNITS = {
    Dimension.ENERGY: Unit.KWH,
    Dimension.TIME: Unit.HOUR,
    Dimension.PARKING_TIME: Unit.HOUR,
    Dimension.RESERVATION_TIME: Unit.HOUR,
}
LABELS = {
    Dimension.ENERGY: "Energy",
    Dimension.TIME: "Charging time",
    Dimension.PARKING_TIME: "Parking time",
    Dimension.FLAT: "Session fee",
    Dimension.RESERVATION_TIME: "Reservation time",
    Dimension.RESERVATION_FLAT: "Reservation fee",
    Dimension.ADJUSTMENT: "Price adjustment (tariff minimum/maximum)",
}


@dataclass(frozen=True, slots=True)
class CdrComponent:
    """One rounded cost line of a CDR: ``quantity`` billed (kWh, hours, 1; as priced, never negative),
    ``unit_price`` excl. VAT (None for an adjustment), the tariff's VAT (None: none applicable), ``net``
    (rounded, negative on a credit CDR or a price cap)."""

    dimension: Dimension
    quantity: Decimal
    net: Decimal
    vat_rate: Decimal | None = None
    unit_price: Decimal | None = None

    def __post_init__(self) -> None:
        if self.quantity < 0:
            raise DocumentError(f"{self.dimension}: a billed quantity is never negative")
        if self.unit_price is not None and self.unit_price < 0:
            raise DocumentError(f"{self.dimension}: a unit price is never negative")
        if (self.unit_price is None) != (self.dimension is Dimension.ADJUSTMENT):
            raise DocumentError(f"{self.dimension}: a priced component has a unit price, an adjustment none")


@dataclass(frozen=True, slots=True)
class PricedCdr:
    """What billing needs of one CDR. ``credit_of`` is the credited CDR's id on a credit CDR; ``group`` is
    (driver, vehicle) for a fleet's monthly invoice; ``signed_data_ref`` names its signed meter data."""

    cdr_id: str
    session_ref: str | None
    currency: str
    start: datetime
    end: datetime
    total_excl: Decimal
    components: tuple[CdrComponent, ...]
    total_incl: Decimal | None = None
    is_credit: bool = False
    credit_of: str | None = None
    signed_data_ref: str | None = None
    location: str = ""
    group: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", invoice_currency(self.currency))
        SupplyPeriod(self.start, self.end)
        for amount in (self.total_excl, self.total_incl, *(c.net for c in self.components)):
            if amount is not None and not is_rounded(amount, self.currency):
                raise DocumentError(f"CDR {self.cdr_id}: {amount} is not a rounded {self.currency} amount")
        if total((c.net for c in self.components), self.currency) != self.total_excl:
            raise DocumentError(
                f"CDR {self.cdr_id}: its components do not add up to its total excl. VAT {self.total_excl}"
            )
        if self.is_credit != (self.credit_of is not None):
            raise DocumentError(f"CDR {self.cdr_id}: a credit CDR, and only one, names the CDR it credits")
        if self.is_credit and self.total_excl > 0:
            raise DocumentError(f"CDR {self.cdr_id}: a credit CDR's total cannot be positive")

    @property
    def supply(self) -> SupplyPeriod:
        return SupplyPeriod(self.start, self.end)


def cdr_lines(cdr: PricedCdr, treatment: VatTreatment = NORMAL) -> tuple[InvoiceLine, ...]:
    """The invoice lines of one CDR under ``treatment``: one per component (an adjustment: one per VAT class),
    in the CDR's order; their net adds up to ``cdr.total_excl``."""
    priced = [c for c in cdr.components if c.dimension is not Dimension.ADJUSTMENT]
    adjustments = [c for c in cdr.components if c.dimension is Dimension.ADJUSTMENT]
    klass = [classify(c.vat_rate, treatment) for c in priced]
    lines: list[InvoiceLine] = []
    for n, (component, (category, rate)) in enumerate(zip(priced, klass, strict=True)):
        lines.append(_line(cdr, f"{n + 1}", component, component.net, category, rate))
    classes = list(dict.fromkeys(klass))
    weights = [
        total((c.net for c, k in zip(priced, klass, strict=True) if k == key), cdr.currency)
        for key in classes
    ]
    for m, adjustment in enumerate(adjustments):
        if not classes:  # nothing else was priced: the adjustment alone has no VAT to follow
            first = classify(None, treatment)
            lines.append(_line(cdr, f"a{m + 1}", adjustment, adjustment.net, *first))
            continue
        for j, ((category, rate), part) in enumerate(
            zip(classes, allocate(adjustment.net, [abs(w) for w in weights], cdr.currency), strict=True)
        ):
            if part or len(classes) == 1:
                lines.append(_line(cdr, f"a{m + 1}.{j + 1}", adjustment, part, category, rate))
    return tuple(lines)


def _line(
    cdr: PricedCdr, suffix: str, component: CdrComponent, net: Decimal, category: VatCategory, rate: Decimal
) -> InvoiceLine:
    sign = -1 if net < 0 or (net == 0 and cdr.is_credit) else 1
    adjustment = component.dimension is Dimension.ADJUSTMENT
    quantity = Decimal(1) if adjustment else component.quantity
    unit_price = abs(net) if component.unit_price is None else component.unit_price
    description = LABELS[component.dimension] + (f", {cdr.location}" if cdr.location else "")
    if cdr.is_credit:
        description = f"Correction (credit of CDR {cdr.credit_of}): {description}"
    return InvoiceLine(
        line_id=f"{cdr.cdr_id}:{suffix}",
        description=description,
        quantity=sign * quantity,
        unit=UNITS.get(component.dimension, Unit.ONE),
        unit_price=unit_price,
        net=net,
        currency=cdr.currency,
        vat_category=category,
        vat_rate=rate,
        cdr_id=cdr.cdr_id,
        session_ref=cdr.session_ref,
        signed_data_ref=cdr.signed_data_ref,
        supply=cdr.supply,
        group=cdr.group,
    )


def outside_vat(cdr: PricedCdr) -> bool:
    """Whether ``cdr`` has a line outside the scope of VAT (category O): a component whose tariff has no VAT
    applicable, or an adjustment with nothing else priced. The same under every charging treatment (a tariff
    without VAT is O whether the supply is taxed, exempt or reverse charged: :func:`classify`)."""
    return any(ln.vat_category is VatCategory.OUTSIDE_SCOPE for ln in cdr_lines(cdr))


def fee_line(
    line_id: str,
    description: str,
    amount: Decimal,
    currency: str,
    vat_rate: Decimal | None,
    treatment: VatTreatment = NORMAL,
    *,
    supply: SupplyPeriod | None = None,
    group: tuple[str, ...] = (),
) -> InvoiceLine:
    """A line that is not a session: a recurring fee (a plan, a subscription) or a dunning fee; one unit of
    ``amount`` (rounded, positive) under the VAT ``vat_rate`` gives (None: not subject to VAT)."""
    if amount <= 0 or not is_rounded(amount, currency):
        raise DocumentError(f"fee {line_id}: {amount} is not a positive rounded {currency} amount")
    category, rate = classify(vat_rate, treatment)
    return InvoiceLine(
        line_id=line_id,
        description=description,
        quantity=Decimal(1),
        unit=Unit.ONE,
        unit_price=amount,
        net=amount,
        currency=currency,
        vat_category=category,
        vat_rate=rate,
        supply=supply,
        group=group,
    )


@dataclass(frozen=True, slots=True)
class LineGroup:
    """The lines of one driver and vehicle on a monthly invoice, with their net subtotal."""

    key: tuple[str, ...]
    lines: tuple[InvoiceLine, ...]
    net: Decimal


def monthly_lines(cdrs: Sequence[PricedCdr], treatment: VatTreatment = NORMAL) -> tuple[InvoiceLine, ...]:
    """The lines of a fleet's monthly invoice: every CDR's lines, grouped (driver, vehicle), each group in
    session order (start, then CDR id)."""
    ordered = sorted(cdrs, key=lambda c: (c.group, c.start, c.cdr_id))
    return tuple(line for cdr in ordered for line in cdr_lines(cdr, treatment))


def group_lines(lines: Sequence[InvoiceLine]) -> tuple[LineGroup, ...]:
    """Lines grouped by their ``group`` (first appearance order) with subtotals; the subtotals add up to the
    lines' total."""
    keys = list(dict.fromkeys(ln.group for ln in lines))
    out = []
    for key in keys:
        members = tuple(ln for ln in lines if ln.group == key)
        out.append(LineGroup(key, members, total((ln.net for ln in members), members[0].currency)))
    return tuple(out)
