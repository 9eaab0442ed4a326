"""Payments test kit (issue 14): settings and a provider on the test's localstripe, a fleet's billing account with
a card, invoices on it issued by the store (``tests.billing.store_kit``), what localstripe holds, and
providers that crash at a chosen step (the real provider underneath: every Stripe call is real)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import stripe
from sqlalchemy import select

import billing
from billing.payments.provider import Charge, Refund
from billing.payments.setup import set_card
from billing.payments.stripe_provider import StripeProvider
from billing.store.accounts import fleet_account
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingIssuer, BillingPayment, Fleet
from kernel.settings import Settings
from kernel.timeutil import utcnow
from simulators.localstripe import CARD_OK, PUBLISHABLE_KEY, SECRET_KEY, LocalStripe
from tests.billing.store_kit import CONSUMER, ISSUE, ISSUER, add_cdrs

D = Decimal
WEBHOOK_SECRET = "whsec_evhub_test_signing_secret"


class Crash(Exception):
    """Raised by a crashing provider: the process 'dies' between two steps."""


def settings_for(db: Database, ls: LocalStripe, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db.url,
        "stripe_api_key": SECRET_KEY,
        "stripe_publishable_key": PUBLISHABLE_KEY,
        "stripe_api_base": ls.url,
        "stripe_webhook_secret": WEBHOOK_SECRET,
    }
    return Settings(_env_file=None, **{**values, **extra})


def provider_for(ls: LocalStripe) -> StripeProvider:
    return StripeProvider(SECRET_KEY, api_base=ls.url)


async def fleet_with_account(db: Database, name: str = "Acme Fleet") -> tuple[int, int]:
    """(fleet id, billing account id) of a new fleet with the store kit's issuer (added if missing)."""
    async with db.session() as s:
        if await s.scalar(select(BillingIssuer.id).where(BillingIssuer.key == "voltstreet")) is None:
            await billing.add_issuer(s, ISSUER)
    async with db.session() as s:
        fleet = Fleet(name=name)
        s.add(fleet)
        await s.flush()
        issuer = await s.scalar(select(BillingIssuer).where(BillingIssuer.key == "voltstreet"))
        assert issuer is not None
        account = await fleet_account(s, issuer, fleet.id, CONSUMER)
        return fleet.id, account.id


async def with_card(db: Database, ls: LocalStripe, account_id: int, card: str = CARD_OK) -> str:
    return await set_card(db, settings_for(db, ls), account_id, card, today=utcnow().date())


async def invoices(db: Database, account_id: int, n: int = 1) -> list[BillingDocument]:
    """``n`` per-session invoices (EUR 9.41 each) on the account."""
    cdr_ids = await add_cdrs(db, n)
    out = []
    for cdr_id in cdr_ids:
        async with db.session() as s:
            out.append(
                await billing.issue_session_invoice(
                    s,
                    issuer_key="voltstreet",
                    cdr_id=cdr_id,
                    buyer=CONSUMER,
                    issue_date=ISSUE,
                    account_id=account_id,
                )
            )
    return out


async def payments(db: Database, document_id: int | None = None) -> list[BillingPayment]:
    async with db.session() as s:
        query = select(BillingPayment).order_by(BillingPayment.id)
        if document_id is not None:
            query = query.where(BillingPayment.document_id == document_id)
        return list((await s.scalars(query)).all())


async def account(db: Database, account_id: int) -> BillingAccount:
    async with db.session() as s:
        row = await s.get(BillingAccount, account_id)
        assert row is not None
        return row


def intents(ls: LocalStripe) -> list[dict[str, Any]]:
    """Every PaymentIntent localstripe holds (its own API, not the hub's code)."""
    r = httpx.get(f"{ls.url}/v1/payment_intents", params={"limit": 100}, auth=(SECRET_KEY, ""))
    r.raise_for_status()
    return list(r.json()["data"])


def refunds(ls: LocalStripe) -> list[dict[str, Any]]:
    r = httpx.get(f"{ls.url}/v1/refunds", params={"limit": 100}, auth=(SECRET_KEY, ""))
    r.raise_for_status()
    return list(r.json()["data"])


def signed(
    event: dict[str, Any], secret: str = WEBHOOK_SECRET, *, at: int | None = None
) -> tuple[bytes, str]:
    """(payload, Stripe-Signature header) as Stripe signs a webhook (t=..., v1=HMAC-SHA256)."""
    payload = json.dumps(event).encode()
    stamp = at if at is not None else int(time.time())  # Stripe's tolerance is against the wall clock
    sig = stripe.WebhookSignature._compute_signature(f"{stamp}.{payload.decode()}", secret)
    return payload, f"t={stamp},v1={sig}"


class CrashAfterCreate(StripeProvider):
    """Creates the PaymentIntent at localstripe, then dies before the hub stores its id."""

    async def create_charge(self, **kwargs: Any) -> Charge:
        await super().create_charge(**kwargs)
        raise Crash("died after creating the PaymentIntent")


class CrashAfterConfirm(StripeProvider):
    """Confirms at localstripe (the money is taken), then dies before the hub stores the outcome."""

    async def confirm_charge(self, charge_id: str, *, idempotency_key: str) -> Charge:
        await super().confirm_charge(charge_id, idempotency_key=idempotency_key)
        raise Crash("died after confirming the PaymentIntent")


class CrashAfterRefund(StripeProvider):
    """Refunds at localstripe, then dies before the hub stores the refund's id."""

    async def refund(self, charge_id: str, **kwargs: Any) -> Refund:
        await super().refund(charge_id, **kwargs)
        raise Crash("died after refunding")
