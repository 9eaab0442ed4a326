"""Test kit of billing's portal pages, receipts and reports (issue 14): the portal's world (tests/world/fleets)
with an issuer selling charging to the fleets, fleet billing accounts, per-session invoices of the fleets' CDRs
on those accounts (billing.store.issuing), payments and refunds as ``billing_payments`` rows, holds, and the portal
app served in-process with the billing desk in ``hub.services.billing``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

import billing
from billing.core.documents import Address, Identity, PaymentTerms
from billing.core.numbering import Series
from billing.desk import Desk
from billing.store.accounts import buyer_of, fleet_account
from evhub.app import create_app
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingHold, BillingIssuer, BillingPayment
from kernel.settings import load_settings
from portal.component import PortalComponent
from simulators.localstripe import PUBLISHABLE_KEY, SECRET_KEY, LocalStripe

D = Decimal
ISSUER_KEY = "evh"
SELLER = Identity(
    "EVH Mobility GmbH",
    Address("Torstraße 1", "10119", "Berlin", "DE"),
    vat_id="DE123456789",
    registration_id="HRB 123456",
    business=True,
    email="billing@evh.test",
)
ISSUER = billing.Issuer(
    key=ISSUER_KEY,
    identity=SELLER,
    currency="EUR",
    invoice_series=Series("INV"),
    credit_series=Series("CN"),
    terms=PaymentTerms(14),
)


def fleet_buyer(name: str) -> Identity:
    return Identity(
        f"{name} Logistics GmbH", Address("Hauptstraße 5", "10827", "Berlin", "DE"), business=True
    )


async def add_issuer(db: Database) -> None:
    async with db.session() as s:
        await billing.add_issuer(s, ISSUER)


async def add_account(db: Database, fleet_id: int, name: str, language: str = "en") -> int:
    """The fleet's EUR account with the issuer (created once); its id."""
    async with db.session() as s:
        issuer = (await s.scalars(select(BillingIssuer).where(BillingIssuer.key == ISSUER_KEY))).one()
        account = await fleet_account(s, issuer, fleet_id, fleet_buyer(name), language=language)
        return account.id


async def invoice(db: Database, cdr_id: int, account_id: int, day: date) -> BillingDocument:
    """The per-session invoice of ``cdr_id`` on ``account_id``, issued on ``day``."""
    async with db.session() as s:
        account = await s.get(BillingAccount, account_id)
        assert account is not None
        return await billing.issue_session_invoice(
            s,
            issuer_key=ISSUER_KEY,
            cdr_id=cdr_id,
            buyer=buyer_of(account),
            issue_date=day,
            account_id=account_id,
        )


async def pay(
    db: Database,
    doc: BillingDocument | None,
    amount: str,
    when: datetime,
    *,
    kind: str = "payment",
    method: str = "card",
    status: str = "succeeded",
    account_id: int | None = None,
    ref: str | None = None,
) -> int:
    """A payment (or refund) row settled at ``when``; its id."""
    async with db.session() as s:
        key = ref or f"{kind}-{doc.number if doc else account_id}-{amount}-{when.isoformat()}"
        row = BillingPayment(
            document_id=doc.id if doc else None,
            account_id=account_id if account_id is not None else (doc.account_id if doc else None),
            kind=kind,
            method=method,
            provider="manual" if method == "bank_transfer" else "stripe",
            provider_ref=ref,
            idempotency_key=key,
            amount=D(amount),
            currency="EUR",
            status=status,
            reference="SEPA-REF-1" if method == "bank_transfer" else None,
            settled_at=when,
        )
        s.add(row)
        await s.flush()
        return row.id


async def hold(db: Database, doc: BillingDocument, fleet_id: int, action: str = "block") -> None:
    async with db.session() as s:
        assert doc.account_id is not None
        s.add(
            BillingHold(
                account_id=doc.account_id,
                document_id=doc.id,
                fleet_id=fleet_id,
                action=action,
                rule="block-30",
                since=datetime(2026, 6, 1, tzinfo=UTC),
            )
        )


def stripe_settings(stripe: LocalStripe) -> dict[str, str]:
    """The settings that point payment collection at ``stripe`` (localstripe)."""
    return {
        "stripe_api_key": SECRET_KEY,
        "stripe_publishable_key": PUBLISHABLE_KEY,
        "stripe_api_base": stripe.url,
    }


class DeskComponent:
    """Only the billing desk (``hub.services.billing``): the portal's billing pages without billing's jobs."""

    name = "billing-desk"

    def install(self, hub: Hub) -> None:
        hub.services.billing = Desk(hub.db, hub.settings)

    async def start(self, hub: Hub) -> None:
        return None

    async def stop(self) -> None:
        return None


def billing_portal_app(db: Database, *, with_billing: bool = True, **settings_kw: Any) -> FastAPI:
    """The HTTP app with the portal and, when ``with_billing``, the billing desk as ``hub.services.billing`` (no
    jobs, no socket), as :func:`tests.portal.helpers.portal_app` but with billing."""
    settings = load_settings(database_url=db.url, log_level="WARNING", _env_file=None, **settings_kw)
    hub = Hub(settings=settings, db=db, node_name="billing-portal-test")
    app = create_app(hub)
    hub.app = app
    if with_billing:
        DeskComponent().install(hub)
    PortalComponent(time_zone="Europe/Berlin", scan_interval=3600).install(hub)
    return app
