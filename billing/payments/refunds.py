"""Paying back what the hub owes on an invoice (a credit note after payment: outstanding below zero) through the
provider, once: each refund is a ``billing_payments`` row (kind ``refund``, ``reference`` = the PaymentIntent
it refunds) written and committed before the provider is called, with the idempotency key
``evhub-refund-{document id}-{sequence}`` sent to it and kept in the refund's metadata. A retry resumes the
pending row: the refund is looked up by that key first (localstripe does not honour idempotency keys), then
made. What is owed is spread over the invoice's succeeded card / SEPA payments, newest first.

:func:`request_refund` runs in the transaction that issues a credit note (a correction CDR's, an operator's):
when the credited invoice was paid and is now owed back, it queues the refund on the ``"payment"`` outbox
channel (dedupe key per credit note, the invoice's ordering key, so it follows the invoice's collections), and
the channel's sender makes it after commit with :func:`refund_document`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.payments.collection import CHANNEL, invoice_ordering_key, locked_payment
from billing.payments.ledger import (
    CREDIT_NOTE,
    PAYMENT,
    REFUND,
    PaymentError,
    PaymentItem,
    invoice_by_number,
    item_of,
    lock_document,
)
from billing.payments.provider import (
    FAILED,
    PENDING,
    SUCCEEDED,
    PaymentProvider,
    ProviderError,
    Refund,
    to_minor,
)
from billing.payments.stripe_provider import current_provider
from billing.store.balances import balance
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingPayment
from kernel.outbox import enqueue
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    payment_id: int
    key: str
    charge_id: str
    amount: Decimal
    currency: str
    provider_ref: str | None


async def _invoice(db_session: AsyncSession, document_id: int) -> BillingDocument:
    document = await db_session.get(BillingDocument, document_id)
    if document is not None and document.kind == CREDIT_NOTE and document.credits_document_id is not None:
        document = await db_session.get(BillingDocument, document.credits_document_id)
    if document is not None:
        await lock_document(db_session, document.id)  # one refund planner per invoice at a time
    if document is None or document.kind != "invoice":
        raise PaymentError(f"no invoice with id {document_id}")
    return document


async def _refundable(db_session: AsyncSession, document: BillingDocument) -> list[tuple[str, Decimal]]:
    """(PaymentIntent, amount not yet refunded or being refunded) of the invoice's provider payments."""
    paid = (
        await db_session.scalars(
            select(BillingPayment)
            .where(
                BillingPayment.document_id == document.id,
                BillingPayment.kind == PAYMENT,
                BillingPayment.status == SUCCEEDED,
                BillingPayment.provider == "stripe",
                BillingPayment.provider_ref.is_not(None),
            )
            .order_by(BillingPayment.id.desc())
        )
    ).all()
    rows = await db_session.execute(
        select(BillingPayment.reference, func.sum(BillingPayment.amount))
        .where(
            BillingPayment.document_id == document.id,
            BillingPayment.kind == REFUND,
            BillingPayment.status.in_((PENDING, SUCCEEDED)),
        )
        .group_by(BillingPayment.reference)
    )
    refunded = {ref: Decimal(str(total)) for ref, total in rows}
    return [
        (str(p.provider_ref), p.amount - refunded.get(p.provider_ref, Decimal(0)))
        for p in paid
        if p.amount - refunded.get(p.provider_ref, Decimal(0)) > 0
    ]


async def _plan(db: Database, document_id: int) -> tuple[str, list[_Pending]]:
    """The refunds to make: the pending ones (resumed) or new rows for what is owed, committed."""
    async with db.session() as db_session:
        document = await _invoice(db_session, document_id)
        pending = (
            await db_session.scalars(
                select(BillingPayment)
                .where(
                    BillingPayment.document_id == document.id,
                    BillingPayment.kind == REFUND,
                    BillingPayment.status == PENDING,
                )
                .order_by(BillingPayment.id)
            )
        ).all()
        if not pending:
            owed = -(await balance(db_session, document)).outstanding
            if owed <= 0:
                return document.number, []
            done = await db_session.scalar(
                select(func.count()).where(
                    BillingPayment.document_id == document.id, BillingPayment.kind == REFUND
                )
            )
            sequence = int(done or 0)
            rows = []
            for charge_id, room in await _refundable(db_session, document):
                if owed <= 0:
                    break
                part = min(owed, room)
                sequence += 1
                rows.append(
                    BillingPayment(
                        document_id=document.id,
                        account_id=document.account_id,
                        kind=REFUND,
                        method="card",
                        provider="stripe",
                        idempotency_key=f"evhub-refund-{document.id}-{sequence}",
                        amount=part,
                        currency=document.currency,
                        status=PENDING,
                        reference=charge_id,
                        attempt=sequence,
                    )
                )
                owed -= part
            if owed > 0:
                log.warning(
                    "invoice %s: %s owed back was not paid through the provider", document.number, owed
                )
                if not rows:
                    raise PaymentError(
                        f"invoice {document.number}: {owed} {document.currency} is owed back, but it was not "
                        "paid through the payment provider (refund it by bank transfer)"
                    )
            db_session.add_all(rows)
            await db_session.flush()
            pending = rows
        return document.number, [
            _Pending(r.id, r.idempotency_key, str(r.reference), r.amount, r.currency, r.provider_ref)
            for r in pending
        ]


def record_refund(row: BillingPayment, refund: Refund) -> bool:
    """A refund's outcome on its row; True when it changed."""
    changed = row.provider_ref != refund.id or (refund.status != PENDING and row.status != refund.status)
    row.provider_ref = refund.id
    if refund.status != PENDING and row.status != refund.status:
        row.status = refund.status
        row.failure_reason = refund.failure_reason if refund.status == FAILED else None
        row.settled_at = utcnow() if refund.status == SUCCEEDED else None
    return changed


async def refund_document(
    db: Database, document_id: int, *, provider: PaymentProvider | None = None
) -> list[PaymentItem]:
    """Refund what is owed back on invoice ``document_id`` (or on the invoice a credit note credits); the
    refunds made (empty when nothing is owed). Idempotent: a second call makes none."""
    try:
        number, plans = await _plan(db, document_id)
    except IntegrityError:  # a concurrent call planned the same refunds first: resume those
        number, plans = await _plan(db, document_id)
    if not plans:
        return []
    own = provider is None
    provider = provider or current_provider()
    if provider is None:
        raise PaymentError("payment collection is off: EVHUB_STRIPE_API_KEY is not set")
    try:
        for plan in plans:
            async with (
                db.session() as db_session
            ):  # the row's lock across the call: concurrent calls take turns
                row = await locked_payment(db_session, plan.payment_id)
                if row.status != PENDING:
                    continue
                try:
                    if row.provider_ref is not None:
                        refund = await provider.retrieve_refund(row.provider_ref)
                    else:
                        found = await provider.find_refund(plan.charge_id, plan.key)
                        refund = found or await provider.refund(
                            plan.charge_id,
                            amount_minor=to_minor(row.amount, row.currency),
                            idempotency_key=plan.key,
                            metadata={
                                "evhub_document_id": str(document_id),
                                "evhub_idempotency_key": plan.key,
                            },
                        )
                except ProviderError as exc:
                    row.status, row.failure_reason = FAILED, exc.reason
                    continue
                record_refund(row, refund)
    finally:
        if own:
            await provider.aclose()
    async with db.session() as db_session:
        rows = [await db_session.get(BillingPayment, p.payment_id) for p in plans]
        return [item_of(r, number) for r in rows if r is not None]


async def refund_invoice(
    db: Database, number: str, *, provider: PaymentProvider | None = None
) -> list[PaymentItem]:
    """Refund what is owed back on invoice ``number`` (``evhub payments refund``)."""
    async with db.session() as db_session:
        document = await invoice_by_number(db_session, number)
    return await refund_document(db, document.id, provider=provider)


def refund_dedupe_key(credit_note_id: int) -> str:
    return f"refund:{credit_note_id}"


async def request_refund(db_session: AsyncSession, credit_note: BillingDocument) -> bool:
    """Queue the refund a just-issued credit note makes owed (its invoice paid, and now outstanding below zero),
    in the issuing transaction; whether one was queued. Nothing for an unpaid invoice (the credit note lowers
    what is due) or one paid only by bank transfer (paid back by the operator: it shows as owed)."""
    if credit_note.kind != CREDIT_NOTE or credit_note.credits_document_id is None:
        return False
    invoice = await db_session.get(BillingDocument, credit_note.credits_document_id)
    if invoice is None or (await balance(db_session, invoice)).outstanding >= 0:
        return False
    by_provider = await db_session.scalar(
        select(func.count())
        .select_from(BillingPayment)
        .where(
            BillingPayment.document_id == invoice.id,
            BillingPayment.kind == PAYMENT,
            BillingPayment.status == SUCCEEDED,
            BillingPayment.provider != "manual",
        )
    )
    if not by_provider:
        return False
    account = await db_session.get(BillingAccount, invoice.account_id) if invoice.account_id else None
    message = await enqueue(
        db_session,
        CHANNEL,
        (account.provider if account is not None else None) or "stripe",
        invoice_ordering_key(invoice.id),
        {"refund_document_id": invoice.id, "credit_note_id": credit_note.id},
        dedupe_key=refund_dedupe_key(credit_note.id),
    )
    return message is not None
