"""The ``"payment"`` outbox channel's sender: what billing queued in a document's transaction, made after commit.

Two kinds of message, both per invoice under its ordering key (so an invoice's collections and refunds run one at
a time, in the order they were queued):

* ``{"document_id", "attempt"}``: collection attempt ``attempt`` of an invoice (:func:`.collection.collect`);
* ``{"refund_document_id", "credit_note_id"}``: the refund a credit note made owed (:func:`.refunds.refund_document`).

A refusal (no payment method, a document that cannot be paid or refunded) gives the message up with its reason
(parked, visible in ``evhub outbox list``); anything else (the network, the database) is retried with the same
attempt or refund, which the steps of :mod:`.collection` and :mod:`.refunds` make safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from billing.payments.collection import collect
from billing.payments.ledger import PaymentError
from billing.payments.provider import PaymentProvider
from billing.payments.refunds import refund_document
from kernel.db.engine import Database
from kernel.models.outbox import OutboxMessage
from kernel.outbox import DeliveryResult, Sender

log = logging.getLogger(__name__)


async def _refund(db: Database, message: OutboxMessage, provider: PaymentProvider | None) -> DeliveryResult:
    document_id = int(message.payload["refund_document_id"])
    made = await refund_document(db, document_id, provider=provider)
    if not made:
        return DeliveryResult.delivered(status="nothing owed")
    return DeliveryResult.delivered(status=",".join(r.status for r in made), payment_ids=[r.id for r in made])


async def _collect(db: Database, message: OutboxMessage, provider: PaymentProvider | None) -> DeliveryResult:
    item = await collect(
        db, int(message.payload["document_id"]), int(message.payload.get("attempt", 1)), provider=provider
    )
    if item is None:
        return DeliveryResult.delivered(status="nothing owed")
    return DeliveryResult.delivered(status=item.status, payment_id=item.id)


def make_payment_sender(
    db: Database, provider_getter: Callable[[], PaymentProvider | None] | None = None
) -> Sender:
    """The channel's sender: one collection attempt or one credit note's refund per message."""

    async def sender(message: OutboxMessage) -> DeliveryResult:
        what = "refund" if "refund_document_id" in message.payload else "collection"
        provider = provider_getter() if provider_getter is not None else None
        try:
            if what == "refund":
                return await _refund(db, message, provider)
            return await _collect(db, message, provider)
        except PaymentError as exc:
            log.warning("%s of outbox message %s refused: %s", what, message.id, exc)
            return DeliveryResult.give_up(str(exc))
        except Exception as exc:  # the network, the database: retried, the steps make it safe
            log.warning("%s of outbox message %s failed: %s", what, message.id, exc)
            return DeliveryResult.retry(f"{type(exc).__name__}: {exc}")
        finally:
            if provider is not None:
                await provider.aclose()

    return sender
