"""Dunning test kit (issue 14): a fleet with a manager and a token charging at a Berlin CPO, an issuer invoicing
the fleet's account, one issued session invoice (due 14 days after issue), and recording a payment as the
payments part does (a succeeded ``billing_payments`` row, then ``release_if_settled``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import billing
from billing.core.documents import Address, Identity
from billing.store.accounts import driver_account, fleet_account, party_account
from billing.store.holds import release_if_settled
from billing.store.issuers import get_issuer
from billing.store.schedules import set_schedule
from kernel.db.engine import Database
from kernel.models import BillingDocument, BillingPayment, Token
from kernel.timeutil import utcnow
from tests.billing.store_kit import ISSUER
from tests.world.fleets import FleetWorld, add_fleet_with_manager, add_session, add_token, base_world

FLEET = "Acme Logistics"
MANAGER = "manager@acme.example"
TOKEN = "ACME0001"
FLEET_BUYER = Identity(
    "Acme Logistics GmbH",
    Address("Hauptstr. 1", "10115", "Berlin", "DE"),
    vat_id="DE123456789",
    business=True,
)


@dataclass
class Dunned:
    """What a dunning test refers to: the world (charger, fleet, token), the issuer, account and invoice."""

    world: FleetWorld
    issuer_key: str
    account_id: int
    document_id: int
    number: str
    due: date
    payable: Decimal
    cdr_id: int
    token_id: int


async def seed(
    db: Database,
    *,
    language: str = "en",
    timezone: str = "Europe/Berlin",
    schedule: dict[str, Any] | None = None,
    world: FleetWorld | None = None,
) -> Dunned:
    """The fleet ``Acme Logistics`` (manager e-mail, token ``ACME0001``), issuer ``voltstreet`` (of the CPO)
    with ``schedule`` (None: the default), the fleet's account in ``language`` / ``timezone``, and the invoice
    of one session, issued today by the hub's clock."""
    world = world or await base_world(db)
    await add_fleet_with_manager(db, world, FLEET, MANAGER)
    await add_token(db, world, FLEET, TOKEN, driver="Dora", email="dora@acme.example")
    _, cdr_id = await add_session(db, world, TOKEN, utcnow() - timedelta(days=2), "20")
    assert cdr_id is not None
    async with db.session() as s:
        await billing.add_issuer(s, ISSUER, party_id=world.cpo_id)
        if schedule is not None:
            await set_schedule(s, ISSUER.key, schedule)
        issuer = await get_issuer(s, ISSUER.key)
        account = await fleet_account(
            s, issuer, world.fleets[FLEET], FLEET_BUYER, language=language, timezone=timezone
        )
        doc = await billing.issue_session_invoice(
            s, issuer_key=ISSUER.key, cdr_id=cdr_id, buyer=FLEET_BUYER, account_id=account.id
        )
        assert doc.due_date is not None
        return Dunned(
            world,
            ISSUER.key,
            account.id,
            doc.id,
            doc.number,
            doc.due_date,
            doc.payable,
            cdr_id,
            world.tokens[TOKEN],
        )


async def seed_driver(db: Database, d: Dunned, uid: str = "DRIVER01", email: str | None = None) -> Dunned:
    """Beside :func:`seed`'s fleet: a driver without a contract (token ``uid``, no fleet), their account with
    the same issuer and the invoice of one session of theirs."""
    async with db.session() as s:
        token = Token(country_code="DE", party_id="EVH", uid=uid, contract_id=f"DE-EVH-{uid}", issuer="EVH",
                      driver_email=email, last_updated=utcnow())  # fmt: skip
        s.add(token)
        await s.flush()
        d.world.tokens[uid] = token.id
    _, cdr_id = await add_session(db, d.world, uid, utcnow() - timedelta(days=1), "10")
    assert cdr_id is not None
    buyer = Identity("Ada Driver", Address("Damrak 5", "1012 LG", "Amsterdam", "NL"))
    async with db.session() as s:
        issuer = await get_issuer(s, ISSUER.key)
        account = await driver_account(s, issuer, token.id, buyer)
        doc = await billing.issue_session_invoice(
            s, issuer_key=ISSUER.key, cdr_id=cdr_id, buyer=buyer, account_id=account.id
        )
        assert doc.due_date is not None
        return Dunned(
            d.world, ISSUER.key, account.id, doc.id, doc.number, doc.due_date, doc.payable, cdr_id, token.id
        )


async def pay(db: Database, document_id: int, amount: Decimal | None = None) -> int:
    """A succeeded bank transfer of ``amount`` (all of it by default) against the invoice, and the release of
    its holds in the same transaction; the number of holds released."""
    async with db.session() as s:
        doc = await s.get(BillingDocument, document_id)
        assert doc is not None
        s.add(
            BillingPayment(
                document_id=doc.id,
                account_id=doc.account_id,
                method="bank_transfer",
                provider="manual",
                idempotency_key=f"test-{uuid.uuid4().hex}",
                amount=doc.payable if amount is None else amount,
                currency=doc.currency,
                status="succeeded",
                reference=doc.number,
                settled_at=utcnow(),
            )
        )
        await s.flush()
        return await release_if_settled(s, document_id)


def day(dunned: Dunned, n: int) -> date:
    """``n`` days after the invoice's due date."""
    return dunned.due + timedelta(days=n)


async def more_invoices(db: Database, d: Dunned, n: int) -> list[int]:
    """``n`` more session invoices of the fleet's token on its account (issued today); their document ids."""
    ids = []
    for i in range(n):
        _, cdr_id = await add_session(db, d.world, TOKEN, utcnow() - timedelta(days=3, hours=2 * i), "5")
        assert cdr_id is not None
        async with db.session() as s:
            doc = await billing.issue_session_invoice(
                s, issuer_key=d.issuer_key, cdr_id=cdr_id, buyer=FLEET_BUYER, account_id=d.account_id
            )
            ids.append(doc.id)
    return ids


async def party_invoice(db: Database, d: Dunned) -> int:
    """An invoice of the issuer to a party's (B2B) account: the CPO's, billed as a business."""
    world = d.world
    _, cdr_id = await add_session(db, world, TOKEN, utcnow() - timedelta(hours=5), "3")
    assert cdr_id is not None
    async with db.session() as s:
        account = await party_account(s, await get_issuer(s, "voltstreet"), world.cpo_id, FLEET_BUYER)
        doc = await billing.issue_session_invoice(
            s, issuer_key="voltstreet", cdr_id=cdr_id, buyer=FLEET_BUYER, account_id=account.id
        )
        return doc.id
