"""Issuing documents in the database: a per-session invoice from a priced CDR, a credit note from a credit CDR.

Each runs in the caller's transaction (so a credit CDR's credit note can be issued in the CDR's own
transaction): it locks the issuer's counter row (:mod:`.numbers`), checks again under the lock that the CDR is
not on a document of that kind yet (idempotent: a second call returns the first document, whatever the
interleaving), builds the document with :mod:`billing.core`, and inserts it with its number and its CDRs. A
document that the core refuses raises before anything is written; the caller's rollback gives the number back.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.credit_notes import credit_for_cdr, partial_credit
from billing.core.documents import CreditNote, Identity, Invoice
from billing.core.invoices import session_invoice
from billing.store.cdrs import priced_cdr
from billing.store.codec import load_credit_note, load_invoice, to_json
from billing.store.issuers import from_row, get_issuer
from billing.store.numbers import Allocated, lock, take
from kernel.models.billing import BillingDocument, BillingDocumentCdr, BillingIssuer, BillingNumberSeries
from kernel.models.cdrs import Cdr
from kernel.timeutil import utcnow

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"


class BillingError(ValueError):
    """A document that cannot be issued (no such CDR, a credit CDR of a session never invoiced, ...)."""


async def document_of(db_session: AsyncSession, cdr_id: int, kind: str) -> BillingDocument | None:
    """The document of ``kind`` that CDR ``cdr_id`` is on, if any."""
    statement = (
        select(BillingDocument)
        .join(BillingDocumentCdr, BillingDocumentCdr.document_id == BillingDocument.id)
        .where(BillingDocumentCdr.cdr_id == cdr_id, BillingDocumentCdr.kind == kind)
    )
    return (await db_session.execute(statement)).scalar_one_or_none()


async def _cdr(db_session: AsyncSession, cdr_id: int) -> Cdr:
    row = await db_session.get(Cdr, cdr_id)
    if row is None:
        raise BillingError(f"no CDR {cdr_id}")
    return row


def _row(
    issuer: BillingIssuer,
    kind: str,
    number: Allocated,
    doc: Invoice | CreditNote,
    credits: BillingDocument | None = None,
    *,
    account_id: int | None = None,
    billing_period: str | None = None,
    source_key: str | None = None,
) -> BillingDocument:
    period = doc.supply_period if isinstance(doc, Invoice) else None
    return BillingDocument(
        account_id=account_id if account_id is not None else (credits.account_id if credits else None),
        billing_period=billing_period,
        source_key=source_key,
        issuer_id=issuer.id,
        kind=kind,
        series=doc.series,
        period=number.period,
        sequence=number.sequence,
        number=doc.number,
        issue_date=doc.issue_date,
        due_date=doc.due_date if isinstance(doc, Invoice) else None,
        supply_start=period.start if period else None,
        supply_end=period.end if period else None,
        buyer=to_json(doc.buyer),
        currency=doc.currency,
        total_excl_vat=doc.totals.tax_exclusive,
        total_vat=doc.totals.tax,
        total_incl_vat=doc.totals.tax_inclusive,
        payable=doc.totals.payable,
        document=to_json(doc),
        credits_document_id=credits.id if credits else None,
    )


async def _insert(db_session: AsyncSession, row: BillingDocument, kind: str, cdr_ids: list[int]) -> None:
    db_session.add(row)
    await db_session.flush()
    db_session.add_all(BillingDocumentCdr(document_id=row.id, cdr_id=cdr, kind=kind) for cdr in cdr_ids)
    await db_session.flush()


async def issue_session_invoice(
    db_session: AsyncSession,
    *,
    issuer_key: str,
    cdr_id: int,
    buyer: Identity,
    issue_date: date | None = None,
    account_id: int | None = None,
) -> BillingDocument:
    """The per-session invoice of CDR ``cdr_id`` (a priced, non-credit CDR) by issuer ``issuer_key`` to
    ``buyer``, issued on ``issue_date`` (today by the hub's clock), on account ``account_id`` (the buyer's
    billing account, if it has one); the existing one if it was issued."""
    existing = await document_of(db_session, cdr_id, INVOICE)
    if existing is not None:
        return existing
    cdr = await _cdr(db_session, cdr_id)
    if cdr.is_credit:
        raise BillingError(f"CDR {cdr.cdr_uid} is a credit CDR: it is credited with a credit note")
    issuer_row = await get_issuer(db_session, issuer_key)
    issuer = from_row(issuer_row)
    if cdr.currency != issuer.currency:
        raise BillingError(
            f"issuer {issuer.key} invoices in {issuer.currency}, CDR {cdr.cdr_uid} is in {cdr.currency}"
        )
    day = issue_date or utcnow().date()
    counter = await lock(db_session, issuer_row.id, issuer.invoice_series, day)
    existing = await document_of(db_session, cdr_id, INVOICE)
    if existing is not None:
        return existing
    number = take(counter, issuer.invoice_series, day)
    invoice = session_invoice(
        priced_cdr(cdr),
        series=issuer.invoice_series.prefix,
        number=number.number,
        issue_date=day,
        seller=issuer.identity,
        buyer=buyer,
        terms=issuer.terms,
        treatment=issuer.treatment(buyer),
    )
    row = _row(issuer_row, INVOICE, number, invoice, account_id=account_id)
    await _insert(db_session, row, INVOICE, [cdr.id])
    return row


async def issue_cdr_credit_note(
    db_session: AsyncSession, *, credit_cdr_id: int, issue_date: date | None = None
) -> BillingDocument:
    """The credit note of credit CDR ``credit_cdr_id`` against the invoice of the CDR it credits, by that
    invoice's issuer; the existing one if it was issued. BillingError when the credited CDR was not invoiced
    on its own (its credit is then a negative line of the next monthly invoice)."""
    existing = await document_of(db_session, credit_cdr_id, CREDIT_NOTE)
    if existing is not None:
        return existing
    credit = await _cdr(db_session, credit_cdr_id)
    if not credit.is_credit or credit.credit_of is None:
        raise BillingError(f"CDR {credit.cdr_uid} is not a credit CDR")
    on_invoice = await document_of(db_session, credit.id, INVOICE)
    if on_invoice is not None:  # a monthly invoice took it as a negative line next to its original
        raise BillingError(
            f"credit CDR {credit.cdr_uid} is a line of invoice {on_invoice.number}: nothing to credit"
        )
    original = await _cdr(db_session, credit.credit_of)
    invoice_row = await document_of(db_session, original.id, INVOICE)
    if invoice_row is None:
        raise BillingError(f"CDR {original.cdr_uid} is on no invoice: nothing to credit")
    issuer_row = await db_session.get(BillingIssuer, invoice_row.issuer_id)
    assert issuer_row is not None  # a foreign key
    issuer = from_row(issuer_row)
    day = issue_date or utcnow().date()
    counter = await lock(db_session, issuer_row.id, issuer.credit_series, day)
    existing = await document_of(db_session, credit_cdr_id, CREDIT_NOTE)
    if existing is not None:
        return existing
    parts = await _invoices_with_lines_of(db_session, invoice_row, original.cdr_uid)
    if len(parts) > 1:  # a monthly invoice and its invoice outside VAT each carry some of the CDR's lines
        return await _split_credit(db_session, issuer_row, counter, parts, original, credit, day)
    earlier = (
        await db_session.execute(
            select(BillingDocument)
            .where(BillingDocument.credits_document_id == invoice_row.id)
            .order_by(BillingDocument.id)
        )
    ).scalars()
    number = take(counter, issuer.credit_series, day)
    note = credit_for_cdr(
        load_invoice(invoice_row.document),
        priced_cdr(credit, original),
        [load_credit_note(n.document) for n in earlier],
        series=issuer.credit_series.prefix,
        number=number.number,
        issue_date=day,
    )
    row = _row(issuer_row, CREDIT_NOTE, number, note, credits=invoice_row)
    await _insert(db_session, row, CREDIT_NOTE, [original.id, credit.id])
    return row


OUTSIDE_VAT = ":O"  # the source key suffix of a month's invoice outside VAT (billing.store.monthly)


async def _invoices_with_lines_of(
    db_session: AsyncSession, invoice_row: BillingDocument, cdr_uid: str
) -> list[BillingDocument]:
    """``invoice_row`` and, for a monthly invoice, its sibling invoice outside VAT when it has lines of CDR
    ``cdr_uid`` too (the CDR's O lines went there: EN 16931 BR-O-11/12)."""
    key = invoice_row.source_key
    if not key or not key.startswith("monthly:"):
        return [invoice_row]
    sibling_key = key.removesuffix(OUTSIDE_VAT) if key.endswith(OUTSIDE_VAT) else key + OUTSIDE_VAT
    sibling = await db_session.scalar(
        select(BillingDocument).where(
            BillingDocument.issuer_id == invoice_row.issuer_id,
            BillingDocument.kind == INVOICE,
            BillingDocument.source_key == sibling_key,
        )
    )
    parts = [invoice_row]
    if sibling is not None and any(ln.cdr_id == cdr_uid for ln in load_invoice(sibling.document).lines):
        parts.append(sibling)
    return parts


async def _split_credit(
    db_session: AsyncSession,
    issuer_row: BillingIssuer,
    counter: BillingNumberSeries,
    parts: list[BillingDocument],
    original: Cdr,
    credit: Cdr,
    day: date,
) -> BillingDocument:
    """The credit notes of a credit CDR whose original's lines are on two invoices: one per invoice, each
    crediting exactly that CDR's lines there (whole); the first links the CDRs. The credit CDR must negate what
    the two invoiced together. Returns the first note."""
    issuer = from_row(issuer_row)
    invoices = [load_invoice(p.document) for p in parts]
    wanted = [{ln.line_id: ln.net for ln in inv.lines if ln.cdr_id == original.cdr_uid} for inv in invoices]
    invoiced = sum((sum(w.values(), Decimal(0)) for w in wanted), Decimal(0))
    if credit.currency != original.currency or -credit.total_cost_excl_vat != invoiced:
        raise BillingError(
            f"credit CDR {credit.cdr_uid} credits {credit.total_cost_excl_vat} {credit.currency}, "
            f"but {invoiced} was invoiced for CDR {original.cdr_uid}"
        )
    rows: list[BillingDocument] = []
    for part, invoice, lines in zip(parts, invoices, wanted, strict=True):
        earlier = (
            await db_session.scalars(
                select(BillingDocument)
                .where(BillingDocument.credits_document_id == part.id)
                .order_by(BillingDocument.id)
            )
        ).all()
        number = take(counter, issuer.credit_series, day)
        note = partial_credit(
            invoice,
            [load_credit_note(n.document) for n in earlier],
            series=issuer.credit_series.prefix,
            number=number.number,
            issue_date=day,
            reason=f"Correction of CDR {original.cdr_uid} (credit CDR {credit.cdr_uid})",
            lines=lines,
        )
        row = _row(issuer_row, CREDIT_NOTE, number, note, credits=part)
        await _insert(db_session, row, CREDIT_NOTE, [original.id, credit.id] if not rows else [])
        rows.append(row)
    return rows[0]
