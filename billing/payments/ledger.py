"""The payments ledger: ``billing_payments`` rows as people see them, looked up by invoice number and listed with
party isolation (a CPO's key sees the payments of the documents it issued or is billed on).

Also the few lookups every payment module shares: an invoice by its number (:func:`invoice_by_number`),
a row by its idempotency key, and :class:`PaymentError`, the one error a payment command or route shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kernel.models import BillingAccount, BillingDocument, BillingIssuer, BillingPayment
from kernel.money import parse_amount

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
PAYMENT = "payment"
REFUND = "refund"


class PaymentError(ValueError):
    """Bad input or a state that refuses the request (no such invoice, no payment method, nothing owed...)."""


@dataclass(frozen=True, slots=True)
class PaymentItem:
    """One payment or refund against a document, as the CLI and the API show it."""

    id: int
    invoice: str | None
    kind: str
    method: str
    provider: str
    provider_ref: str | None
    amount: Decimal
    currency: str
    status: str
    failure_reason: str | None
    reference: str | None
    attempt: int
    created_at: datetime
    settled_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def item_of(row: BillingPayment, number: str | None) -> PaymentItem:
    return PaymentItem(
        id=row.id,
        invoice=number,
        kind=row.kind,
        method=row.method,
        provider=row.provider,
        provider_ref=row.provider_ref,
        amount=parse_amount(row.amount, row.currency, allow_negative=True),  # 4.00, as stored (SQLite says 4)
        currency=row.currency,
        status=row.status,
        failure_reason=row.failure_reason,
        reference=row.reference,
        attempt=row.attempt,
        created_at=row.created_at,
        settled_at=row.settled_at,
    )


async def invoice_by_number(db_session: AsyncSession, number: str) -> BillingDocument:
    """The invoice numbered ``number`` (PaymentError when there is none, or one per issuer)."""
    rows = (
        await db_session.scalars(
            select(BillingDocument).where(BillingDocument.number == number, BillingDocument.kind == INVOICE)
        )
    ).all()
    if not rows:
        raise PaymentError(f"no invoice {number}")
    if len(rows) > 1:
        raise PaymentError(f"invoice number {number} is used by {len(rows)} issuers: give the document id")
    return rows[0]


async def lock_document(db_session: AsyncSession, document_id: int) -> None:
    """Lock the document's row for the transaction (PostgreSQL; SQLite has one writer at a time): planning a
    payment or a refund of one invoice is serialised, so two planners never both see nothing planned."""
    await db_session.execute(
        select(BillingDocument.id).where(BillingDocument.id == document_id).with_for_update()
    )


async def invoice_by_id(db_session: AsyncSession, document_id: int) -> BillingDocument:
    await lock_document(db_session, document_id)
    document = await db_session.get(BillingDocument, document_id)
    if document is None or document.kind != INVOICE:
        raise PaymentError(f"no invoice with id {document_id}")
    return document


async def by_key(db_session: AsyncSession, key: str) -> BillingPayment | None:
    return await db_session.scalar(select(BillingPayment).where(BillingPayment.idempotency_key == key))


def payments_query(
    *, document_id: int | None = None, cpo_id: int | None = None
) -> Select[BillingPayment, str]:
    """Payments with their invoice's number, oldest first; narrowed to one document or to what a CPO sees."""
    doc = aliased(BillingDocument)
    query = (
        select(BillingPayment, doc.number)
        .outerjoin(doc, doc.id == BillingPayment.document_id)
        .order_by(BillingPayment.id)
    )
    if document_id is not None:
        query = query.where(BillingPayment.document_id == document_id)
    if cpo_id is not None:
        issuer = aliased(BillingIssuer)
        account = aliased(BillingAccount)
        query = (
            query.outerjoin(issuer, issuer.id == doc.issuer_id)
            .outerjoin(account, account.id == BillingPayment.account_id)
            .where(or_(issuer.party_id == cpo_id, account.party_id == cpo_id))
        )
    return query


async def list_payments(
    db_session: AsyncSession,
    *,
    number: str | None = None,
    document_id: int | None = None,
    cpo_id: int | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Sequence[PaymentItem]:
    """Payments and refunds, oldest first: of invoice ``number`` (or ``document_id``), or all; what a CPO sees."""
    if number is not None:
        document_id = (await invoice_by_number(db_session, number)).id
    query = payments_query(document_id=document_id, cpo_id=cpo_id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [item_of(row, number) for row, number in (await db_session.execute(query)).all()]
