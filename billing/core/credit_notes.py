"""Credit notes: from a credit CDR (a correction), or by an operator, in full or in part, with a reason.

An invoice is immutable; what is taken back from it is a :class:`~.documents.CreditNote` that names the
invoice and, per line, the invoice line it credits. Whatever the order and the amounts, **nothing is credited
beyond what is left on the invoice**:

* per line: the credits of a line stay between zero and the line's net (a negative line, e.g. a price cap or
  an earlier correction, is only credited whole, by a full or a CDR credit);
* per VAT category and rate: between zero and the invoice's taxable amount;
* the VAT credited for a category and rate is cumulative: ``tax(all credits so far) - tax already credited``,
  so the credit notes of an invoice together never credit more VAT than it charged, and a full credit (or the
  last part of one) reverses it to the cent. A single partial note's VAT may thus differ from its own
  taxable x rate by one minor unit (EN 16931's Schematron allows one unit on BR-CO-17);
* the note that closes the invoice also credits its BT-114 rounding amount, so the notes credit exactly the
  amount that was due (a consumer's per-session invoice is due at the CDR's price).

The earlier credit notes of the invoice are passed in (the database adapter loads them in the issuing
transaction, under the invoice's lock); the number comes from the allocator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal

from billing.core.documents import (
    CreditNote,
    CreditScope,
    DocumentError,
    Invoice,
    InvoiceLine,
    Unit,
    VatBreakdown,
)
from billing.core.en16931 import ZERO, category_tax, is_rounded, total
from billing.core.lines import PricedCdr
from billing.core.vat import taxable_amounts, totals
from kernel.money import allocate

Key = tuple[object, Decimal]


class CreditError(DocumentError):
    """A credit that cannot be issued: more than is left, a line the invoice does not have, nothing to credit."""


def _key(line: InvoiceLine) -> tuple[object, Decimal]:
    return (line.vat_category, line.vat_rate)


def credited(invoice: Invoice, earlier: Sequence[CreditNote]) -> dict[str, Decimal]:
    """Per invoice line id, the net credited by ``earlier`` (the invoice's credit notes so far)."""
    done = {ln.line_id: ZERO for ln in invoice.lines}
    for note in earlier:
        if note.invoice_number != invoice.number or note.currency != invoice.currency:
            raise CreditError(f"credit note {note.number} does not credit invoice {invoice.number}")
        for ln in note.lines:
            if ln.credits_line not in done:
                raise CreditError(
                    f"credit note {note.number} credits line {ln.credits_line}, not on the invoice"
                )
            done[ln.credits_line] += ln.net
    return done


def remaining(invoice: Invoice, earlier: Sequence[CreditNote]) -> dict[str, Decimal]:
    """Per invoice line id, the net still creditable."""
    done = credited(invoice, earlier)
    return {ln.line_id: ln.net - done[ln.line_id] for ln in invoice.lines}


def _within(value: Decimal, bound: Decimal) -> bool:
    """``value`` between zero and ``bound`` (either sign)."""
    return min(ZERO, bound) <= value <= max(ZERO, bound)


def _check_caps(invoice: Invoice, earlier: Sequence[CreditNote], amounts: Mapping[str, Decimal]) -> None:
    done = credited(invoice, earlier)
    by_id = {ln.line_id: ln for ln in invoice.lines}
    for line_id, amount in amounts.items():
        line = by_id[line_id]
        if not is_rounded(amount, invoice.currency):
            raise CreditError(f"line {line_id}: {amount} is not a rounded {invoice.currency} amount")
        if not _within(done[line_id] + amount, line.net) or (amount and (amount < 0) != (line.net < 0)):
            raise CreditError(
                f"line {line_id}: crediting {amount} exceeds what is left on it ({line.net - done[line_id]})"
            )
        if line.net < 0 and amount and done[line_id] + amount != line.net:
            raise CreditError(f"line {line_id} is negative: it is only credited whole")
    invoice_taxable = taxable_amounts(invoice.lines, invoice.currency)
    for key, taxable in invoice_taxable.items():
        after = sum(
            (done[ln.line_id] + amounts.get(ln.line_id, ZERO) for ln in invoice.lines if _key(ln) == key),
            ZERO,
        )
        if not _within(after, taxable):
            raise CreditError(
                f"VAT {key[0]} {key[1]}%: credits would reach {after} of the invoiced {taxable}"
            )
    after_total = sum(done.values(), ZERO) + sum(amounts.values(), ZERO)
    if not _within(after_total, invoice.totals.tax_exclusive):
        raise CreditError(f"credits would reach {after_total} of the invoiced {invoice.totals.tax_exclusive}")


def _credit_line(line: InvoiceLine, amount: Decimal) -> InvoiceLine:
    """The credit note's line for ``amount`` of invoice line ``line``: the same line when whole, else one
    unit of the amount (a part of a line has no quantity of its own)."""
    if amount == line.net:
        return replace(line, credits_line=line.line_id)
    return replace(
        line,
        description=f"Partial credit: {line.description}",
        quantity=Decimal(1) if amount > 0 else Decimal(-1),
        unit=Unit.ONE,
        unit_price=abs(amount),
        net=amount,
        credits_line=line.line_id,
    )


def _note(
    invoice: Invoice,
    earlier: Sequence[CreditNote],
    amounts: Mapping[str, Decimal],
    *,
    series: str,
    number: str,
    issue_date: date,
    reason: str,
    credit_cdr: str | None = None,
) -> CreditNote:
    amounts = {k: v for k, v in amounts.items() if v}
    if not amounts:
        raise CreditError(f"nothing left to credit on invoice {invoice.number}")
    _check_caps(invoice, earlier, amounts)
    currency = invoice.currency
    by_id = {ln.line_id: ln for ln in invoice.lines}
    lines = tuple(_credit_line(by_id[k], v) for k, v in amounts.items())
    done = credited(invoice, earlier)
    reasons = {b.key: b.exemption_reason for b in invoice.breakdown}
    vat = []
    for key, taxable in taxable_amounts(lines, currency).items():
        cumulative = sum(
            (done[ln.line_id] + amounts.get(ln.line_id, ZERO) for ln in invoice.lines if _key(ln) == key),
            ZERO,
        )
        tax_before = total((b.tax for note in earlier for b in note.breakdown if b.key == key), currency)
        tax = category_tax(cumulative, key[1], currency) - tax_before
        vat.append(VatBreakdown(key[0], key[1], taxable, tax, currency, reasons.get(key)))
    left = {k: v - amounts.get(k, ZERO) for k, v in remaining(invoice, earlier).items()}
    closing = not any(left.values())
    # The note that closes the invoice also gives back its BT-114 rounding amount (a consumer's per-session
    # invoice), so the notes together credit exactly what was due.
    rounding = (
        invoice.totals.rounding - total((n.totals.rounding for n in earlier), currency) if closing else ZERO
    )
    return CreditNote(
        series=series,
        number=number,
        issue_date=issue_date,
        seller=invoice.seller,
        buyer=invoice.buyer,
        currency=currency,
        invoice_number=invoice.number,
        invoice_date=invoice.issue_date,
        reason=reason,
        scope=CreditScope.FULL if closing else CreditScope.PARTIAL,
        lines=lines,
        breakdown=tuple(vat),
        totals=totals(lines, vat, currency, rounding),
        credit_cdr=credit_cdr,
        notes=invoice.notes,
    )


def full_credit(
    invoice: Invoice,
    earlier: Sequence[CreditNote],
    *,
    series: str,
    number: str,
    issue_date: date,
    reason: str,
) -> CreditNote:
    """Credit everything still left on ``invoice`` (all of it when nothing was credited yet)."""
    return _note(
        invoice,
        earlier,
        remaining(invoice, earlier),
        series=series,
        number=number,
        issue_date=issue_date,
        reason=reason,
    )


def credit_for_cdr(
    invoice: Invoice,
    credit_cdr: PricedCdr,
    earlier: Sequence[CreditNote],
    *,
    series: str,
    number: str,
    issue_date: date,
) -> CreditNote:
    """The credit note of a credit CDR: every line of the credited CDR on ``invoice``, whole. The credit CDR
    must negate exactly what was invoiced for that CDR, and none of it may have been credited already."""
    if not credit_cdr.is_credit:
        raise CreditError(f"CDR {credit_cdr.cdr_id} is not a credit CDR")
    lines = [ln for ln in invoice.lines if ln.cdr_id == credit_cdr.credit_of]
    if not lines:
        raise CreditError(f"CDR {credit_cdr.credit_of} is not on invoice {invoice.number}")
    done = credited(invoice, earlier)
    if any(done[ln.line_id] for ln in lines):
        raise CreditError(f"CDR {credit_cdr.credit_of} was already credited on invoice {invoice.number}")
    invoiced = total((ln.net for ln in lines), invoice.currency)
    if credit_cdr.currency != invoice.currency or -credit_cdr.total_excl != invoiced:
        raise CreditError(
            f"credit CDR {credit_cdr.cdr_id} credits {credit_cdr.total_excl} {credit_cdr.currency}, "
            f"but {invoiced} {invoice.currency} was invoiced for CDR {credit_cdr.credit_of}"
        )
    return _note(
        invoice,
        earlier,
        {ln.line_id: ln.net for ln in lines},
        series=series,
        number=number,
        issue_date=issue_date,
        reason=f"Correction of CDR {credit_cdr.credit_of} (credit CDR {credit_cdr.cdr_id})",
        credit_cdr=credit_cdr.cdr_id,
    )


def cdr_left(invoice: Invoice, cdr_uid: str, earlier: Sequence[CreditNote]) -> dict[str, Decimal]:
    """Per line of CDR ``cdr_uid`` on ``invoice``, the net still creditable after ``earlier``."""
    left = remaining(invoice, earlier)
    return {ln.line_id: left[ln.line_id] for ln in invoice.lines if ln.cdr_id == cdr_uid}


def correction_credit(
    invoice: Invoice,
    credit_cdr: PricedCdr,
    earlier: Sequence[CreditNote],
    *,
    series: str,
    number: str,
    issue_date: date,
) -> CreditNote:
    """The credit note of a correction (credit CDR) on ``invoice``: what is left of the credited CDR's lines
    there (:func:`cdr_left`). When an operator credited part of them before, only the rest is credited and the
    reason says how much was credited already (the CDR's money then adds up: invoiced - credits = 0 for the
    credited CDR, the corrected CDR is invoiced on its own). CreditError when nothing is left."""
    if not credit_cdr.is_credit or credit_cdr.credit_of is None:
        raise CreditError(f"CDR {credit_cdr.cdr_id} is not a credit CDR")
    left = cdr_left(invoice, credit_cdr.credit_of, earlier)
    if not left:
        raise CreditError(f"CDR {credit_cdr.credit_of} is not on invoice {invoice.number}")
    invoiced = total((ln.net for ln in invoice.lines if ln.cdr_id == credit_cdr.credit_of), invoice.currency)
    rest = total(left.values(), invoice.currency)
    reason = f"Correction of CDR {credit_cdr.credit_of} (credit CDR {credit_cdr.cdr_id})"
    if rest != invoiced:
        reason += (
            f"; {invoiced - rest} {invoice.currency} of its {invoiced} was credited before, "
            f"this credits the {rest} left"
        )
    return _note(
        invoice,
        earlier,
        left,
        series=series,
        number=number,
        issue_date=issue_date,
        reason=reason,
        credit_cdr=credit_cdr.cdr_id,
    )


def partial_credit(
    invoice: Invoice,
    earlier: Sequence[CreditNote],
    *,
    series: str,
    number: str,
    issue_date: date,
    reason: str,
    amount: Decimal | None = None,
    lines: Mapping[str, Decimal] | None = None,
) -> CreditNote:
    """An operator's credit of part of ``invoice``: net ``amount`` spread over what is left, in proportion
    (per VAT category and rate, then per line, with :func:`kernel.money.allocate`), or given ``lines``
    (invoice line id -> net to credit). VAT follows the invoice's rules."""
    if (amount is None) == (lines is None):
        raise CreditError("a partial credit gives either an amount or lines")
    if lines is None:
        assert amount is not None
        lines = spread(invoice, earlier, amount)
    known = {ln.line_id for ln in invoice.lines}
    unknown = [k for k in lines if k not in known]
    if unknown:
        raise CreditError(f"invoice {invoice.number} has no line {unknown[0]}")
    return _note(invoice, earlier, lines, series=series, number=number, issue_date=issue_date, reason=reason)


def spread(invoice: Invoice, earlier: Sequence[CreditNote], amount: Decimal) -> dict[str, Decimal]:
    """Net ``amount`` over the invoice's positive lines still open, proportionally to what is left per VAT
    category and rate and then per line, so no line, class or total exceeds what is left."""
    currency = invoice.currency
    if amount <= 0 or not is_rounded(amount, currency):
        raise CreditError(f"a partial credit is a positive rounded {currency} amount, not {amount}")
    left = remaining(invoice, earlier)
    left_total = sum(left.values(), ZERO)
    if amount > left_total:
        raise CreditError(
            f"crediting {amount} exceeds what is left on invoice {invoice.number} ({left_total})"
        )
    by_class: dict[Key, list[InvoiceLine]] = {}
    for ln in invoice.lines:
        by_class.setdefault(_key(ln), []).append(ln)
    headroom = {k: sum((left[ln.line_id] for ln in members), ZERO) for k, members in by_class.items()}
    open_classes = [k for k, h in headroom.items() if h > 0]
    out: dict[str, Decimal] = {}
    for key, part in zip(
        open_classes, allocate(amount, [headroom[k] for k in open_classes], currency), strict=True
    ):
        members = [ln for ln in by_class[key] if left[ln.line_id] > 0]
        for ln, share in zip(
            members, allocate(part, [left[ln.line_id] for ln in members], currency), strict=True
        ):
            if share:
                out[ln.line_id] = share
    return out
