"""Operator credits: a credit note an operator issues against an invoice, in full or in part, with a reason.

:func:`credit_document` finds the invoice by its number (and issuer, when two issuers use the number), locks the
issuer's credit note counter (:mod:`.numbers`), loads the invoice's earlier credit notes under that lock and
issues :func:`billing.core.credit_notes.full_credit` (all that is left) or
:func:`~billing.core.credit_notes.partial_credit` (a net amount spread over what is left), so that nothing is
ever credited beyond what is left, whatever the interleaving. A ``key`` makes a retried request idempotent
(``source_key`` ``credit:<key>``: the same key returns the first note).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.credit_notes import full_credit, partial_credit
from billing.store.codec import load_credit_note, load_invoice
from billing.store.issuers import from_row
from billing.store.issuing import CREDIT_NOTE, INVOICE, BillingError, _insert, _row
from billing.store.numbers import lock, take
from kernel.models.billing import BillingDocument, BillingIssuer
from kernel.timeutil import utcnow


async def find_document(
    db_session: AsyncSession, number: str, issuer_key: str | None = None, kind: str | None = None
) -> BillingDocument:
    """The document numbered ``number`` (of ``issuer_key``, of ``kind``); BillingError if none or several."""
    query = select(BillingDocument).where(BillingDocument.number == number)
    if issuer_key is not None:
        query = query.join(BillingIssuer, BillingIssuer.id == BillingDocument.issuer_id).where(
            BillingIssuer.key == issuer_key
        )
    if kind is not None:
        query = query.where(BillingDocument.kind == kind)
    rows = list((await db_session.scalars(query)).all())
    if not rows:
        raise BillingError(f"no {'invoice' if kind == INVOICE else 'document'} {number}")
    if len(rows) > 1:
        raise BillingError(f"{number} is used by several issuers: give the issuer")
    return rows[0]


def parse_amount(text: str | Decimal | None) -> Decimal | None:
    """A net amount as given by an operator ("12.30"); BillingError unless it is a number."""
    if text is None or isinstance(text, Decimal):
        return text
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise BillingError(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise BillingError(f"amount {text!r} is not a number")
    return value


async def credit_document(
    db_session: AsyncSession,
    number: str,
    issuer_key: str | None = None,
    amount: Decimal | None = None,
    *,
    reason: str,
    issue_date: date | None = None,
    key: str | None = None,
) -> BillingDocument:
    """An operator's credit note against invoice ``number``: of net ``amount`` (spread over what is left), or of
    everything left when ``amount`` is None; ``reason`` is written on it. BillingError (or the core's
    CreditError) for an unknown invoice, an empty reason, or more than is left."""
    if not (reason or "").strip():
        raise BillingError("a credit note needs a reason")
    invoice_row = await find_document(db_session, number, issuer_key, INVOICE)
    issuer_row = await db_session.get(BillingIssuer, invoice_row.issuer_id)
    assert issuer_row is not None  # a foreign key
    issuer = from_row(issuer_row)
    keyed = f"credit:{key}" if key else None
    if keyed is not None:
        done = await _keyed(db_session, issuer_row.id, keyed)
        if done is not None:
            return done
    day = issue_date or utcnow().date()
    counter = await lock(db_session, issuer_row.id, issuer.credit_series, day)
    if keyed is not None:
        done = await _keyed(db_session, issuer_row.id, keyed)
        if done is not None:
            return done
    earlier = (
        await db_session.scalars(
            select(BillingDocument)
            .where(BillingDocument.credits_document_id == invoice_row.id)
            .order_by(BillingDocument.id)
        )
    ).all()
    invoice = load_invoice(invoice_row.document)
    notes = [load_credit_note(n.document) for n in earlier]
    allocated = take(counter, issuer.credit_series, day)
    series, text = issuer.credit_series.prefix, reason.strip()
    if amount is None:
        note = full_credit(
            invoice, notes, series=series, number=allocated.number, issue_date=day, reason=text
        )
    else:
        note = partial_credit(
            invoice, notes, series=series, number=allocated.number, issue_date=day, reason=text, amount=amount
        )
    row = _row(issuer_row, CREDIT_NOTE, allocated, note, credits=invoice_row, source_key=keyed)
    await _insert(db_session, row, CREDIT_NOTE, [])
    return row


async def _keyed(db_session: AsyncSession, issuer_id: int, keyed: str) -> BillingDocument | None:
    return await db_session.scalar(
        select(BillingDocument).where(
            BillingDocument.issuer_id == issuer_id,
            BillingDocument.kind == CREDIT_NOTE,
            BillingDocument.source_key == keyed,
        )
    )
