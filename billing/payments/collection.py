"""Collecting an invoice through the account's payment provider, so that a retry or a crash never charges twice.

* :func:`request_collection` runs in the issuing transaction: when the invoice's account has a payment method
  and ``auto_collect``, it enqueues an outbox message (channel ``"payment"``, dedupe key per document and
  attempt). The provider is called after commit, by the outbox dispatcher (:func:`billing.payments.channel.make_payment_sender`).
* :func:`collect` makes attempt ``attempt`` of an invoice in steps, each committed before the next
  (:func:`collect_document`, dunning's "retry payment", makes retry N as attempt N + 1):

  1. a ``billing_payments`` row, ``pending``, for the amount outstanding (minus other attempts still pending),
     ``idempotency_key = evhub-invoice-{document id}-{attempt}``; an attempt that exists is resumed, and one
     that ended is returned as it is;
  2. the PaymentIntent created, unconfirmed, with that key, and its id stored on the row;
  3. the PaymentIntent confirmed (off-session) and the outcome stored: ``succeeded`` (then the document's
     holds are released when nothing is outstanding) or ``failed`` with the provider's reason.

  A crash after 1 retries from 2; after 2 but before its id is stored, the retry creates the PaymentIntent
  again (Stripe returns the same one for the key; localstripe makes a second, never confirmed, so nothing is
  taken); after 2 it retrieves the stored one and confirms it only if it still waits for confirmation. The
  webhook (:mod:`billing.payments.webhooks`) records the same outcomes, whichever comes first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.payments.ledger import (
    PAYMENT,
    PaymentError,
    PaymentItem,
    by_key,
    invoice_by_id,
    invoice_by_number,
    item_of,
)
from billing.payments.provider import (
    FAILED,
    PENDING,
    SUCCEEDED,
    Charge,
    PaymentProvider,
    ProviderError,
    from_minor,
    to_minor,
)
from billing.payments.stripe_provider import current_provider
from billing.store.balances import balance
from billing.store.holds import release_if_settled
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingPayment
from kernel.outbox import enqueue
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

CHANNEL = "payment"
FINAL = frozenset({SUCCEEDED, FAILED, "canceled"})


def idempotency_key(document_id: int, attempt: int) -> str:
    """The key of one collection attempt of an invoice: the provider charges it once."""
    return f"evhub-invoice-{document_id}-{attempt}"


def dedupe_key(document_id: int, attempt: int) -> str:
    return f"payment:{document_id}:{attempt}"


def invoice_ordering_key(document_id: int) -> str:
    """The outbox ordering key of an invoice's collections and refunds: they run one at a time, in order."""
    return f"invoice:{document_id}"


async def request_collection(db_session: AsyncSession, document: BillingDocument) -> None:
    """Queue the automatic collection of a just-issued invoice, in the issuing transaction (durable: the
    charge itself is made after commit, with the invoice's id as idempotency key). No-op for a document
    without an account, an account without a payment method or with ``auto_collect`` off."""
    if document.kind != "invoice" or document.account_id is None or document.payable <= 0:
        return None
    account = await db_session.get(BillingAccount, document.account_id)
    if account is None or not account.payment_method_id or not account.auto_collect:
        return None
    await enqueue(
        db_session,
        CHANNEL,
        account.provider or "stripe",
        invoice_ordering_key(document.id),
        {"document_id": document.id, "attempt": 1},
        dedupe_key=dedupe_key(document.id, 1),
    )
    return None


async def queue_attempt(db_session: AsyncSession, document_id: int, attempt: int) -> bool:
    """Queue attempt ``attempt`` of an invoice in the caller's transaction (False: queued before)."""
    message = await enqueue(
        db_session,
        CHANNEL,
        "stripe",
        invoice_ordering_key(document_id),
        {"document_id": document_id, "attempt": attempt},
        dedupe_key=dedupe_key(document_id, attempt),
    )
    return message is not None


@dataclass(frozen=True, slots=True)
class _Plan:
    payment_id: int
    key: str
    customer_id: str
    payment_method_id: str
    amount: Decimal
    currency: str
    provider_ref: str | None
    status: str


async def _pending_elsewhere(db_session: AsyncSession, document_id: int, key: str) -> Decimal:
    total = await db_session.scalar(
        select(func.coalesce(func.sum(BillingPayment.amount), 0)).where(
            BillingPayment.document_id == document_id,
            BillingPayment.kind == PAYMENT,
            BillingPayment.status == PENDING,
            BillingPayment.idempotency_key != key,
        )
    )
    return Decimal(str(total or 0))


async def _plan(db: Database, document_id: int, attempt: int) -> _Plan | PaymentItem | None:
    """Step 1: the attempt's row (committed before any provider call), or the ended attempt, or None when
    nothing is owed."""
    key = idempotency_key(document_id, attempt)
    async with db.session() as db_session:
        document = await invoice_by_id(db_session, document_id)
        row = await by_key(db_session, key)
        if row is not None and row.status in FINAL:
            return item_of(row, document.number)
        account = await db_session.get(BillingAccount, document.account_id) if document.account_id else None
        if account is None or not account.provider_customer_id or not account.payment_method_id:
            raise PaymentError(f"invoice {document.number}: its account has no payment method")
        if row is None:
            owed = (await balance(db_session, document)).outstanding
            owed -= await _pending_elsewhere(db_session, document.id, key)
            if owed <= 0:
                log.info("invoice %s: nothing to collect", document.number)
                return None
            row = BillingPayment(
                document_id=document.id,
                account_id=account.id,
                kind=PAYMENT,
                method="card",
                provider="stripe",
                idempotency_key=key,
                amount=owed,
                currency=document.currency,
                status=PENDING,
                attempt=attempt,
            )
            try:
                async with db_session.begin_nested():
                    db_session.add(row)
                    await db_session.flush()
            except IntegrityError:  # the same attempt, concurrently: resume that one
                row = await by_key(db_session, key)
                if row is None:
                    raise
        return _Plan(
            row.id,
            key,
            account.provider_customer_id,
            account.payment_method_id,
            row.amount,
            row.currency,
            row.provider_ref,
            row.status,
        )


async def record_charge(
    db_session: AsyncSession, row: BillingPayment, charge: Charge, *, source: str
) -> bool:
    """Store a charge's outcome on its row (pending -> succeeded / failed; a failed one may still succeed);
    True when the row changed. Releases the document's holds once a payment succeeded."""
    if row.provider_ref is None:
        row.provider_ref = charge.id
    if charge.method is not None:
        row.method = charge.method
    if charge.status == row.status or charge.status == PENDING or row.status == SUCCEEDED:
        return False
    row.status = charge.status
    row.failure_reason = charge.failure_reason if charge.status == FAILED else None
    if charge.status == SUCCEEDED:
        row.settled_at = utcnow()
        if from_minor(charge.amount_minor, charge.currency) != row.amount:
            log.warning("payment %s: the provider took %s minor units", row.id, charge.amount_minor)
    await db_session.flush()
    log.info("payment %s of document %s %s (%s)", row.id, row.document_id, row.status, source)
    if charge.status == SUCCEEDED and row.document_id is not None:
        await release_if_settled(db_session, row.document_id)
    return True


async def locked_payment(db_session: AsyncSession, payment_id: int) -> BillingPayment:
    """The payment row, locked for the transaction (``FOR UPDATE`` on PostgreSQL; on SQLite every transaction
    is ``BEGIN IMMEDIATE``, one writer at a time) and read afresh: two collectors of one attempt, in one
    process or several, take turns, and the second finds what the first did."""
    row = await db_session.scalar(
        select(BillingPayment)
        .where(BillingPayment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


async def _item(db_session: AsyncSession, row: BillingPayment) -> PaymentItem:
    document = await db_session.get(BillingDocument, row.document_id) if row.document_id else None
    return item_of(row, document.number if document else None)


async def collect(
    db: Database, document_id: int, attempt: int, *, provider: PaymentProvider | None = None
) -> PaymentItem | None:
    """Make (or resume) collection attempt ``attempt`` of invoice ``document_id``; the payment as it ended
    (or still pending), None when nothing is owed. PaymentError: no such invoice, no payment method, or
    collection is off. A network error propagates: call again with the same attempt.

    Steps 2 and 3 each run in a transaction holding the payment row's lock across the provider call, so a
    concurrent collector of the same attempt waits and then sees the PaymentIntent (or the outcome)."""
    planned = await _plan(db, document_id, attempt)
    if not isinstance(planned, _Plan):
        return planned
    own = provider is None
    provider = provider or current_provider()
    if provider is None:
        raise PaymentError("payment collection is off: EVHUB_STRIPE_API_KEY is not set")
    try:
        async with db.session() as db_session:  # step 2, committed: a retry finds this PaymentIntent
            row = await locked_payment(db_session, planned.payment_id)
            if row.status in FINAL:
                return await _item(db_session, row)
            if row.provider_ref is None:
                try:
                    charge = await provider.create_charge(
                        customer_id=planned.customer_id,
                        payment_method_id=planned.payment_method_id,
                        amount_minor=to_minor(row.amount, row.currency),
                        currency=row.currency,
                        idempotency_key=planned.key,
                        metadata={
                            "evhub_document_id": str(document_id),
                            "evhub_idempotency_key": planned.key,
                        },
                    )
                except ProviderError as exc:
                    row.status, row.failure_reason = FAILED, exc.reason
                    return await _item(db_session, row)
                await record_charge(db_session, row, charge, source="collection")
        async with db.session() as db_session:  # step 3
            row = await locked_payment(db_session, planned.payment_id)
            if row.status in FINAL or row.provider_ref is None:
                return await _item(db_session, row)
            charge = await provider.retrieve_charge(row.provider_ref)
            if charge.needs_confirmation:
                try:
                    charge = await provider.confirm_charge(
                        row.provider_ref, idempotency_key=f"{planned.key}-confirm"
                    )
                except ProviderError as exc:
                    row.status, row.failure_reason = FAILED, exc.reason
                    return await _item(db_session, row)
            await record_charge(db_session, row, charge, source="collection")
            return await _item(db_session, row)
    finally:
        if own:
            await provider.aclose()


async def collect_document(
    db: Database, document_id: int, attempt: int, *, provider: PaymentProvider | None = None
) -> PaymentItem | None:
    """Dunning's "retry payment" step: retry ``attempt`` (1, 2, ...) of an invoice is its collection attempt
    ``attempt + 1`` (attempt 1 is the automatic one made when it was issued), so a retry never resumes or
    repeats the first charge; the same retry called twice is one attempt."""
    return await collect(db, document_id, attempt + 1, provider=provider)


async def next_attempt(db_session: AsyncSession, document_id: int) -> int:
    """The attempt an operator's "collect now" makes: a pending one is resumed, else the one after the last."""
    rows = (
        await db_session.execute(
            select(BillingPayment.attempt, BillingPayment.status).where(
                BillingPayment.document_id == document_id,
                BillingPayment.kind == PAYMENT,
                BillingPayment.idempotency_key.like("evhub-invoice-%"),
            )
        )
    ).all()
    pending = [attempt for attempt, status in rows if status == PENDING]
    if pending:
        return min(pending)
    return max((attempt for attempt, _ in rows), default=0) + 1


async def collect_invoice(
    db: Database, number: str, *, provider: PaymentProvider | None = None
) -> PaymentItem | None:
    """Collect invoice ``number`` now (``evhub payments collect``): its next attempt, or the pending one."""
    async with db.session() as db_session:
        document = await invoice_by_number(db_session, number)
        attempt = await next_attempt(db_session, document.id)
    return await collect(db, document.id, attempt, provider=provider)
