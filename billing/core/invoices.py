"""Assembling invoices from priced CDRs: the per-session invoice and the fleet's monthly invoice.

Both are the same steps: the lines (:mod:`.lines`), their VAT breakdown and totals (:mod:`.vat`), the notes
the VAT needs, the due date from the payment terms. The number comes in already allocated (the gap-free
allocator is an adapter, :mod:`.numbering` has its rules); "today" is ``issue_date``.

What the buyer pays (BT-115):

* **per-session invoice to a consumer** (app and ad-hoc drivers): the CDR's ``total_cost.incl_vat``, the price
  the driver was shown and charged. The invoice's VAT is still BR-CO-17's, per rate over the net; the cents by
  which the CDR's per-line incl.-VAT rounding differs from it become the BT-114 rounding amount, when they are
  within one minor unit per line (:func:`session_rounding`). A larger difference (a tariff whose incl.-VAT
  min/max price does not follow its VAT) is not rounding: the invoice total is then due, and
  :func:`billing.core.vat.reconcile` reports it.
* **monthly invoice** (and any business buyer): the invoice's own total with VAT, BT-112; the per-CDR incl.-VAT
  totals are only reconciled against it.

A CDR's lines outside the scope of VAT (category O: a tariff dimension without VAT) cannot share an invoice with
taxed lines (EN 16931 BR-O-11, BR-O-12): when the issuer can invoice them without its VAT id (BR-O-02, BR-CO-26:
it has a registration id) they go on an invoice of their own (:func:`session_lines`,
:func:`outside_vat_session_invoice`), and the consumer pays the CDR's price over the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal

from billing.core.documents import (
    DocumentError,
    Identity,
    Invoice,
    InvoiceLine,
    PaymentTerms,
    SupplyPeriod,
    VatCategory,
    currency_of,
)
from billing.core.en16931 import ZERO, minor_unit
from billing.core.lines import PricedCdr, cdr_lines, monthly_lines
from billing.core.vat import NORMAL, TreatmentKind, VatTreatment, breakdown, notes, totals


def session_rounding(cdr: PricedCdr, n_lines: int, invoice_total_incl: Decimal) -> Decimal:
    """BT-114 of a consumer's per-session invoice: the CDR's incl.-VAT total minus the invoice's BT-112 when
    that is rounding (at most one minor unit per line, and at least one), else zero."""
    if cdr.total_incl is None:
        return ZERO
    difference = cdr.total_incl - invoice_total_incl
    if abs(difference) <= max(n_lines, 1) * minor_unit(cdr.currency):
        return difference
    return ZERO


def assemble_invoice(
    lines: Sequence[InvoiceLine],
    *,
    series: str,
    number: str,
    issue_date: date,
    seller: Identity,
    buyer: Identity,
    terms: PaymentTerms,
    treatment: VatTreatment,
    supply_period: SupplyPeriod | None,
    consumer_price: PricedCdr | None = None,
    notes_before: Sequence[str] = (),
    notes_after: Sequence[str] = (),
    self_billed: bool = False,
) -> Invoice:
    """The invoice of ``lines``: VAT per category and rate (BR-CO-17), totals, due date, the VAT notes (with
    ``notes_before`` and ``notes_after`` around them); the supply period given, else the lines' span. With
    ``consumer_price``, the consumer's rounding amount (BT-114) to that CDR's price (:func:`session_rounding`)."""
    if not lines:
        raise DocumentError("nothing to invoice: no lines (BR-16)")
    currency = currency_of(lines)
    vat = breakdown(lines, currency, treatment)
    plain = totals(lines, vat, currency)
    rounding = ZERO
    if consumer_price is not None:
        rounding = session_rounding(consumer_price, len(lines), plain.tax_inclusive)
    period = supply_period or SupplyPeriod.span([ln.supply for ln in lines if ln.supply])
    return Invoice(
        series=series,
        number=number,
        issue_date=issue_date,
        supply_period=period,
        seller=seller,
        buyer=buyer,
        currency=currency,
        lines=tuple(lines),
        breakdown=vat,
        totals=totals(lines, vat, currency, rounding),
        payment_terms=terms,
        due_date=terms.due_date(issue_date),
        notes=(*notes_before, *notes(vat), *notes_after),
        self_billed=self_billed,
    )


def session_invoice(
    cdr: PricedCdr,
    *,
    series: str,
    number: str,
    issue_date: date,
    seller: Identity,
    buyer: Identity,
    terms: PaymentTerms,
    treatment: VatTreatment,
    lines: Sequence[InvoiceLine] | None = None,
) -> Invoice:
    """The invoice of one charging session (a driver without a contract); a consumer pays the CDR's price. With
    ``lines`` (the CDR's taxed lines when its lines outside VAT go on an invoice of their own,
    :func:`session_lines`), a consumer pays the CDR's price less those other lines."""
    if cdr.is_credit:
        raise DocumentError(
            f"CDR {cdr.cdr_id} is a credit CDR: it is credited with a credit note, not invoiced"
        )
    consumer = not buyer.business and treatment.kind is TreatmentKind.NORMAL
    all_lines = cdr_lines(cdr, treatment)
    price = cdr
    if lines is not None and cdr.total_incl is not None:
        elsewhere = sum((ln.net for ln in all_lines), ZERO) - sum((ln.net for ln in lines), ZERO)
        price = replace(cdr, total_incl=cdr.total_incl - elsewhere)  # lines outside VAT: incl. = net
    return assemble_invoice(
        all_lines if lines is None else lines,
        series=series,
        number=number,
        issue_date=issue_date,
        seller=seller,
        buyer=buyer,
        terms=terms,
        treatment=treatment,
        supply_period=cdr.supply,
        consumer_price=price if consumer else None,
    )


def session_lines(
    cdr: PricedCdr, treatment: VatTreatment, *, apart: bool
) -> tuple[tuple[InvoiceLine, ...], tuple[InvoiceLine, ...]]:
    """(the per-session invoice's lines, the lines of its invoice outside VAT): with ``apart`` (the issuer has a
    registration id to invoice category O without its VAT id), the CDR's category O lines go on the second."""
    lines = cdr_lines(cdr, treatment)
    if not apart:
        return lines, ()
    outside = VatCategory.OUTSIDE_SCOPE
    return (
        tuple(ln for ln in lines if ln.vat_category is not outside),
        tuple(ln for ln in lines if ln.vat_category is outside),
    )


def outside_vat_session_invoice(
    cdr: PricedCdr,
    lines: Sequence[InvoiceLine],
    *,
    series: str,
    number: str,
    issue_date: date,
    seller: Identity,
    buyer: Identity,
    terms: PaymentTerms,
) -> Invoice:
    """The invoice of a session's ``lines`` outside the scope of VAT (category O, :func:`session_lines`): no
    seller or buyer VAT id on it (BR-O-02; the seller is named by its registration id, BR-CO-26)."""
    if cdr.is_credit:
        raise DocumentError(
            f"CDR {cdr.cdr_id} is a credit CDR: it is credited with a credit note, not invoiced"
        )
    return assemble_invoice(
        lines,
        series=series,
        number=number,
        issue_date=issue_date,
        seller=replace(seller, vat_id=None),
        buyer=replace(buyer, vat_id=None),
        terms=terms,
        treatment=NORMAL,
        supply_period=cdr.supply,
    )


def monthly_invoice(
    cdrs: Sequence[PricedCdr],
    *,
    series: str,
    number: str,
    issue_date: date,
    seller: Identity,
    buyer: Identity,
    terms: PaymentTerms,
    treatment: VatTreatment,
    supply_period: SupplyPeriod | None = None,
    fees: Sequence[InvoiceLine] = (),
) -> Invoice:
    """A fleet's invoice over ``cdrs`` (one currency; credit CDRs give negative lines), grouped per driver and
    vehicle, then ``fees`` (recurring fees, a dunning fee: :func:`billing.core.lines.fee_line`); ``supply_period``
    (e.g. the month) must cover every line's, the span of the lines if None."""
    return assemble_invoice(
        (*monthly_lines(cdrs, treatment), *fees),
        series=series,
        number=number,
        issue_date=issue_date,
        seller=seller,
        buyer=buyer,
        terms=terms,
        treatment=treatment,
        supply_period=supply_period,
    )
