"""A payment received by bank transfer, recorded by an operator against an invoice (provider ``manual``, method
``bank_transfer``), with the bank's reference: the same reference recorded twice for one invoice is one
payment. Partial transfers add up; an overpayment leaves a negative outstanding amount (owed back)."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, date, datetime, time
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from billing.payments.ledger import PAYMENT, PaymentError, PaymentItem, by_key, invoice_by_number, item_of
from billing.payments.provider import SUCCEEDED
from billing.store.holds import release_if_settled
from kernel.models import BillingPayment
from kernel.money import MoneyError, parse_amount
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)


def transfer_key(document_id: int, reference: str) -> str:
    digest = hashlib.sha256(reference.encode("utf-8")).hexdigest()[:40]
    return f"evhub-transfer-{document_id}-{digest}"


async def record_bank_transfer(
    db_session: AsyncSession,
    number: str,
    amount: Decimal | str,
    reference: str,
    received_on: date,
) -> PaymentItem:
    """Record a bank transfer of ``amount`` (in the invoice's currency) against invoice ``number``, in the
    caller's transaction; the payment (the one recorded before, for a reference used twice)."""
    reference = reference.strip()
    if not reference:
        raise PaymentError("a bank transfer needs its reference")
    if len(reference) > 140:
        raise PaymentError("a bank transfer's reference has at most 140 characters")
    if received_on > utcnow().date():
        raise PaymentError(f"a transfer received on {received_on.isoformat()} is in the future")
    document = await invoice_by_number(db_session, number)
    try:
        value = parse_amount(amount, document.currency)
    except MoneyError as exc:
        raise PaymentError(str(exc)) from None
    if value <= 0:
        raise PaymentError(f"amount {amount} must be more than zero")
    key = transfer_key(document.id, reference)
    existing = await by_key(db_session, key)
    if existing is not None:
        if existing.amount != value:
            raise PaymentError(
                f"reference {reference!r} is already recorded on {number} for {existing.amount} {existing.currency}"
            )
        return item_of(existing, document.number)
    row = BillingPayment(
        document_id=document.id,
        account_id=document.account_id,
        kind=PAYMENT,
        method="bank_transfer",
        provider="manual",
        idempotency_key=key,
        amount=value,
        currency=document.currency,
        status=SUCCEEDED,
        reference=reference,
        settled_at=datetime.combine(received_on, time(0), tzinfo=UTC),
    )
    db_session.add(row)
    await db_session.flush()
    log.info("bank transfer of %s %s recorded on %s", value, document.currency, number)
    await release_if_settled(db_session, document.id)
    return item_of(row, document.number)
