"""Issuing documents in the database: a per-session invoice from a priced CDR, a credit note from a credit CDR.

Each runs in the caller's transaction (so a credit CDR's credit note can be issued in the CDR's own
transaction): it locks the issuer's counter row (:mod:`.numbers`), checks again under the lock that the CDR is
not on a document of that kind yet (idempotent: a second call returns the first document, whatever the
interleaving), builds the document with :mod:`billing.core`, and inserts it with its number and its CDRs. A
document that the core refuses raises before anything is written; the caller's rollback gives the number back.

A per-session invoice puts the CDR's lines outside the scope of VAT on an invoice of their own (EN 16931
BR-O-11/12), as the monthly invoice does; an issuer without a registration id (stored before one was required)
cannot name itself on such an invoice (BR-O-02, BR-CO-26), so the CDR is held (:class:`HeldOutsideVat`, a
warning) until the id is set, never mixed with taxed lines. A credit CDR's credit notes credit what is left of its CDR on each of
its invoices after an operator's credits, and when nothing is left the credit is settled by the note that
credited it all (:func:`issue_cdr_credit_notes`).
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.credit_notes import cdr_left, correction_credit
from billing.core.documents import CreditNote, Identity, Invoice
from billing.core.invoices import outside_vat_session_invoice, session_invoice, session_lines
from billing.core.lines import outside_vat
from billing.core.vat import outside_vat_held
from billing.store.cdrs import priced_cdr
from billing.store.codec import load_credit_note, load_invoice, to_json
from billing.store.held import cdr_item, newly_held
from billing.store.issuers import from_row, get_issuer
from billing.store.numbers import Allocated, lock, take
from kernel.models.billing import BillingDocument, BillingDocumentCdr, BillingIssuer, BillingNumberSeries
from kernel.models.cdrs import Cdr
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"


class BillingError(ValueError):
    """A document that cannot be issued (no such CDR, a credit CDR of a session never invoiced, ...)."""


class HeldOutsideVat(BillingError):
    """A CDR with lines outside the scope of VAT whose issuer has no registration id: not invoiced, held until
    the id is set (the message is the reason, :func:`billing.core.vat.outside_vat_held`). Not a failure."""


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


SESSION = "session:"  # the source key prefix of a per-session invoice split in two (``session:<cdr id>``)


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
    billing account, if it has one); the existing one if it was issued.

    The CDR's lines outside the scope of VAT (category O) go on an invoice of their own (EN 16931 BR-O-11/12,
    BR-O-02; as the monthly invoice's, :mod:`.monthly`): the taxed lines' invoice has ``source_key``
    ``session:<cdr id>``, the other ``session:<cdr id>:O``, and the CDR is linked to the first (to the O invoice
    when all its lines are O). Returns the CDR's linked invoice; :func:`session_invoices` gives both. When the
    issuer has no registration id to name itself by on the O invoice (BR-CO-26), nothing is issued: the CDR is
    held, HeldOutsideVat (logged as a warning the first time, :mod:`.held`; the caller commits it to be
    remembered), and is invoiced so by the first call after the id is set."""
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
    priced = priced_cdr(cdr)
    if not issuer.identity.registration_id and outside_vat(priced):
        reason = f"CDR {cdr.cdr_uid}: {outside_vat_held(issuer.key)}"
        if await newly_held(db_session, issuer_row.id, [cdr_item(cdr.cdr_uid)]):  # warned once (.held)
            log.warning("%s", reason)
        else:
            log.debug("%s", reason)
        raise HeldOutsideVat(reason)
    day = issue_date or utcnow().date()
    counter = await lock(db_session, issuer_row.id, issuer.invoice_series, day)
    existing = await document_of(db_session, cdr_id, INVOICE)
    if existing is not None:
        return existing
    treatment = issuer.treatment(buyer)
    taxed, outside = session_lines(priced, treatment, apart=True)
    rows: list[BillingDocument] = []
    if taxed or not outside:  # (no lines at all: the core refuses it, BR-16)
        number = take(counter, issuer.invoice_series, day)
        invoice = session_invoice(
            priced,
            series=issuer.invoice_series.prefix,
            number=number.number,
            issue_date=day,
            seller=issuer.identity,
            buyer=buyer,
            terms=issuer.terms,
            treatment=treatment,
            lines=taxed if outside else None,
        )
        key = f"{SESSION}{cdr.id}" if outside else None
        rows.append(_row(issuer_row, INVOICE, number, invoice, account_id=account_id, source_key=key))
    if outside:
        number = take(counter, issuer.invoice_series, day)
        invoice = outside_vat_session_invoice(
            priced,
            outside,
            series=issuer.invoice_series.prefix,
            number=number.number,
            issue_date=day,
            seller=issuer.identity,
            buyer=buyer,
            terms=issuer.terms,
        )
        key = f"{SESSION}{cdr.id}{OUTSIDE_VAT}"
        rows.append(_row(issuer_row, INVOICE, number, invoice, account_id=account_id, source_key=key))
    for n, row in enumerate(rows):
        await _insert(db_session, row, INVOICE, [cdr.id] if n == 0 else [])
    return rows[0]


async def session_invoices(db_session: AsyncSession, invoice_row: BillingDocument) -> list[BillingDocument]:
    """A per-session invoice and its sibling invoice outside VAT, when the session's lines were split in two
    (:func:`issue_session_invoice`): taxed lines' invoice first. Just ``invoice_row`` otherwise."""
    key = invoice_row.source_key
    if not key or not key.startswith(SESSION):
        return [invoice_row]
    base = key.removesuffix(OUTSIDE_VAT)
    rows = (
        await db_session.scalars(
            select(BillingDocument)
            .where(
                BillingDocument.issuer_id == invoice_row.issuer_id,
                BillingDocument.kind == INVOICE,
                BillingDocument.source_key.in_([base, base + OUTSIDE_VAT]),
            )
            .order_by(BillingDocument.id)
        )
    ).all()
    return list(rows)


async def issue_cdr_credit_note(
    db_session: AsyncSession, *, credit_cdr_id: int, issue_date: date | None = None
) -> BillingDocument:
    """The credit note of credit CDR ``credit_cdr_id`` against the invoice of the CDR it credits, by that
    invoice's issuer; the existing one if it was issued (see :func:`issue_cdr_credit_notes`)."""
    await issue_cdr_credit_notes(db_session, credit_cdr_id=credit_cdr_id, issue_date=issue_date)
    row = await document_of(db_session, credit_cdr_id, CREDIT_NOTE)
    assert row is not None  # issued, or linked to the note that had credited everything
    return row


async def issue_cdr_credit_notes(
    db_session: AsyncSession, *, credit_cdr_id: int, issue_date: date | None = None
) -> list[BillingDocument]:
    """The credit notes newly issued for credit CDR ``credit_cdr_id`` (a correction) against the invoice(s) of
    the CDR it credits, by that invoice's issuer: one per invoice with lines of that CDR (a monthly or
    per-session invoice and its invoice outside VAT), the first linked to both CDRs. Each credits what is left
    of the CDR's lines there (:func:`billing.core.credit_notes.correction_credit`): when an operator credited
    part of the invoice before, only the rest, so the invoices less every credit note come to the corrected
    CDR's money (it is invoiced on its own). When nothing is left (an operator credited it all), no note is
    issued: the CDRs are linked to the last note that credited it, with a warning in the log, so the credit is
    settled once and never retried. [] when the credit CDR was dealt with already. BillingError when the
    credited CDR was not invoiced on its own (its credit is then a negative line of the next monthly invoice)
    or when the credit CDR does not negate what was invoiced for it."""
    if await document_of(db_session, credit_cdr_id, CREDIT_NOTE) is not None:
        return []
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
    if await document_of(db_session, credit_cdr_id, CREDIT_NOTE) is not None:
        return []
    parts = await _invoices_with_lines_of(db_session, invoice_row, original.cdr_uid)
    return await _credit_parts(db_session, issuer_row, counter, parts, original, credit, day)


OUTSIDE_VAT = (
    ":O"  # the source key suffix of an invoice outside VAT (billing.store.monthly, per-session ones)
)


async def _invoices_with_lines_of(
    db_session: AsyncSession, invoice_row: BillingDocument, cdr_uid: str
) -> list[BillingDocument]:
    """``invoice_row`` and, for a monthly or split per-session invoice, its sibling invoice outside VAT when it
    has lines of CDR ``cdr_uid`` too (the CDR's O lines went there: EN 16931 BR-O-11/12)."""
    key = invoice_row.source_key
    if not key or not key.startswith(("monthly:", SESSION)):
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


async def _credit_parts(
    db_session: AsyncSession,
    issuer_row: BillingIssuer,
    counter: BillingNumberSeries,
    parts: list[BillingDocument],
    original: Cdr,
    credit: Cdr,
    day: date,
) -> list[BillingDocument]:
    """The credit notes of a credit CDR whose original's lines are on ``parts`` (one invoice, or two): one per
    invoice with something of the CDR left on it; the first links the CDRs (see
    :func:`issue_cdr_credit_notes`). The credit CDR must negate what the invoices together invoiced for it."""
    issuer = from_row(issuer_row)
    invoices = [load_invoice(p.document) for p in parts]
    earlier_rows = [
        list(
            (
                await db_session.scalars(
                    select(BillingDocument)
                    .where(BillingDocument.credits_document_id == p.id)
                    .order_by(BillingDocument.id)
                )
            ).all()
        )
        for p in parts
    ]
    earlier = [[load_credit_note(n.document) for n in rows] for rows in earlier_rows]
    invoiced = sum(
        (ln.net for inv in invoices for ln in inv.lines if ln.cdr_id == original.cdr_uid), Decimal(0)
    )
    if credit.currency != original.currency or -credit.total_cost_excl_vat != invoiced:
        raise BillingError(
            f"credit CDR {credit.cdr_uid} credits {credit.total_cost_excl_vat} {credit.currency}, "
            f"but {invoiced} was invoiced for CDR {original.cdr_uid}"
        )
    left = [cdr_left(inv, original.cdr_uid, notes) for inv, notes in zip(invoices, earlier, strict=True)]
    if not any(v for part in left for v in part.values()):
        last = max((n for rows in earlier_rows for n in rows), key=lambda n: n.id, default=None)
        if last is None:  # a CDR of zero: nothing was invoiced, nothing to credit
            raise BillingError(
                f"CDR {original.cdr_uid} invoiced nothing: no credit note for {credit.cdr_uid}"
            )
        log.warning(
            "credit CDR %s: all of CDR %s on invoice %s was credited already (last by %s); no credit note, "
            "the credit is settled by it",
            credit.cdr_uid,
            original.cdr_uid,
            parts[0].number,
            last.number,
        )
        db_session.add_all(
            BillingDocumentCdr(document_id=last.id, cdr_id=cdr, kind=CREDIT_NOTE)
            for cdr in (original.id, credit.id)
        )
        await db_session.flush()
        return []
    rows: list[BillingDocument] = []
    priced = priced_cdr(credit, original)
    for part, invoice, notes, lines in zip(parts, invoices, earlier, left, strict=True):
        if not any(lines.values()):
            continue
        number = take(counter, issuer.credit_series, day)
        note = correction_credit(
            invoice, priced, notes, series=issuer.credit_series.prefix, number=number.number, issue_date=day
        )
        row = _row(issuer_row, CREDIT_NOTE, number, note, credits=part)
        await _insert(db_session, row, CREDIT_NOTE, [original.id, credit.id] if not rows else [])
        rows.append(row)
    return rows
