"""Stripe's webhook, ``POST /billing/webhooks/stripe`` (no API key: the signature is the authentication).

The ``Stripe-Signature`` header is verified with the SDK (``stripe.Webhook.construct_event``) against
``EVHUB_STRIPE_WEBHOOK_SECRET``: a bad or missing signature is a 400 and nothing is stored. Each event is
recorded once in ``billing_webhook_events`` (UNIQUE per provider and event id), in the same transaction as
what it changes, so a re-delivery is a 200 that changes nothing and a crash loses neither. What it applies:

* ``payment_intent.succeeded`` / ``payment_intent.payment_failed``: the payment row of that PaymentIntent
  (``provider_ref``) -> succeeded (then the document's holds are released once nothing is outstanding) or
  failed with the provider's reason;
* ``charge.refunded``: each refund of the charge updates its refund row; a refund made at the provider
  (its dashboard) is recorded against the invoice of the payment it refunds.

Other event types are recorded and otherwise ignored.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.payments.collection import record_charge
from billing.payments.ledger import PAYMENT, REFUND
from billing.payments.provider import FAILED, SUCCEEDED, Charge, Refund, from_minor
from billing.payments.refunds import record_refund
from billing.payments.stripe_provider import _REFUND_STATUS
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingPayment, BillingWebhookEvent

log = logging.getLogger(__name__)

PATH = "/billing/webhooks/stripe"
router = APIRouter(tags=["billing"])


def _charge_of(intent: dict[str, Any], status: str) -> Charge:
    error = intent.get("last_payment_error") or {}
    types = intent.get("payment_method_types") or [None]
    return Charge(
        id=str(intent["id"]),
        status=status,
        amount_minor=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or "").upper(),
        method=str(types[0]) if types[0] else None,
        failure_reason=(error.get("message") or error.get("code") or "payment failed")
        if status == FAILED
        else None,
    )


async def _payment(db_session: AsyncSession, ref: str) -> BillingPayment | None:
    return await db_session.scalar(
        select(BillingPayment)
        .where(BillingPayment.provider_ref == ref, BillingPayment.kind == PAYMENT)
        .with_for_update()  # a collector storing the same outcome finishes first
    )


async def _on_intent(db_session: AsyncSession, intent: dict[str, Any], status: str) -> str:
    row = await _payment(db_session, str(intent.get("id")))
    if row is None:
        return "unknown payment"
    changed = await record_charge(db_session, row, _charge_of(intent, status), source="webhook")
    return "applied" if changed else "unchanged"


async def _on_refunded(db_session: AsyncSession, charge: dict[str, Any]) -> str:
    intent_id = charge.get("payment_intent")
    payment = await _payment(db_session, str(intent_id)) if intent_id else None
    refunds = (charge.get("refunds") or {}).get("data") or []
    applied = 0
    for data in refunds:
        refund = Refund(
            id=str(data["id"]),
            status=_REFUND_STATUS.get(str(data.get("status")), "pending"),
            amount_minor=int(data.get("amount") or 0),
            currency=str(data.get("currency") or charge.get("currency") or "").upper(),
            failure_reason=data.get("failure_reason"),
        )
        row = await db_session.scalar(select(BillingPayment).where(BillingPayment.provider_ref == refund.id))
        if row is None:
            key = str((data.get("metadata") or {}).get("evhub_idempotency_key") or "")
            row = await db_session.scalar(
                select(BillingPayment).where(
                    BillingPayment.idempotency_key == key, BillingPayment.kind == REFUND
                )
            )
        if row is None:
            if payment is None:
                continue
            row = BillingPayment(  # refunded at the provider, outside the hub
                document_id=payment.document_id,
                account_id=payment.account_id,
                kind=REFUND,
                method=payment.method,
                provider="stripe",
                idempotency_key=f"stripe-{refund.id}",
                amount=from_minor(refund.amount_minor, refund.currency or payment.currency),
                currency=payment.currency,
                status="pending",
                reference=payment.provider_ref,
            )
            db_session.add(row)
        if record_refund(row, refund):
            applied += 1
        await db_session.flush()
    return f"{applied} refunds applied"


async def apply_event(db: Database, event: dict[str, Any]) -> str:
    """Record a verified event once and apply it, in one transaction; what happened (for the log)."""
    async with db.session() as db_session:
        record = BillingWebhookEvent(
            provider="stripe",
            event_id=str(event["id"]),
            type=str(event.get("type")),
            data=(event.get("data") or {}).get("object") or {},
        )
        try:
            async with db_session.begin_nested():
                db_session.add(record)
                await db_session.flush()
        except IntegrityError:
            return "duplicate"
        kind = record.type
        obj = record.data
        if kind == "payment_intent.succeeded":
            return await _on_intent(db_session, obj, SUCCEEDED)
        if kind == "payment_intent.payment_failed":
            return await _on_intent(db_session, obj, FAILED)
        if kind == "charge.refunded":
            return await _on_refunded(db_session, obj)
        return "ignored"


def verify(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event of a signed payload (``stripe.Webhook.construct_event``); ValueError when the signature or
    the payload is wrong."""
    if not signature:
        raise ValueError("no Stripe-Signature header")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError:
        raise ValueError("the signature does not match") from None
    data: dict[str, Any] = event.to_dict()
    if not data.get("id"):
        raise ValueError("the event has no id")
    return data


@router.post(
    PATH, summary="Stripe's events (signed with EVHUB_STRIPE_WEBHOOK_SECRET)", include_in_schema=False
)
async def stripe_webhook(request: Request) -> dict[str, str]:
    hub: Hub = request.app.state.hub
    secret = hub.settings.stripe_webhook_secret
    if not secret:
        log.warning("a Stripe webhook arrived but EVHUB_STRIPE_WEBHOOK_SECRET is not set: refused")
        raise HTTPException(503, "webhooks are off: EVHUB_STRIPE_WEBHOOK_SECRET is not set")
    payload = await request.body()
    try:
        event = verify(payload, request.headers.get("stripe-signature"), secret)
    except ValueError as exc:
        log.warning("Stripe webhook refused: %s", exc)
        raise HTTPException(400, f"webhook refused: {exc}") from None
    outcome = await apply_event(hub.db, event)
    log.info("Stripe event %s (%s): %s", event["id"], event.get("type"), outcome)
    return {"status": outcome}
