"""Billing accounts: the customers the hub bills (a fleet, a driver without a contract, a party for B2B).

An account belongs to one issuer and currency and carries the buyer identity documents are issued to (as
JSON, :mod:`billing.store.codec`), the customer's language and time zone (the month of a monthly invoice and
the dates on documents are the customer's), and the payment provider's customer and default payment method.
:func:`fleet_account` / :func:`driver_account` / :func:`party_account` find or create one, idempotently (the
UNIQUE constraints of ``billing_accounts`` settle a race).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.documents import Address, Identity
from billing.store.codec import to_json
from kernel.models import BillingAccount, BillingIssuer

FLEET = "fleet"
DRIVER = "driver"
PARTY = "party"


def buyer_of(account: BillingAccount) -> Identity:
    """The account's buyer identity (validated again by the core)."""
    data = dict(account.buyer)
    return Identity(**{**data, "address": Address(**data["address"])})


async def _find(
    db_session: AsyncSession, issuer: BillingIssuer, currency: str, **owner: int
) -> BillingAccount | None:
    query = select(BillingAccount).where(
        BillingAccount.issuer_id == issuer.id, BillingAccount.currency == currency
    )
    for column, value in owner.items():
        query = query.where(getattr(BillingAccount, column) == value)
    return (await db_session.scalars(query)).first()


async def _account(
    db_session: AsyncSession,
    issuer: BillingIssuer,
    kind: str,
    buyer: Identity | None,
    currency: str | None,
    language: str,
    timezone: str,
    **owner: int,
) -> BillingAccount:
    code = (currency or issuer.currency).upper()
    found = await _find(db_session, issuer, code, **owner)
    if found is not None:
        return found
    if buyer is None:
        raise ValueError(f"no billing account yet for {kind} {owner}: give the buyer's identity")
    row = BillingAccount(
        issuer_id=issuer.id,
        kind=kind,
        currency=code,
        buyer=to_json(buyer),
        language=language,
        timezone=timezone,
        **owner,
    )
    try:
        async with db_session.begin_nested():
            db_session.add(row)
            await db_session.flush()
    except IntegrityError:  # created concurrently: take that one
        found = await _find(db_session, issuer, code, **owner)
        if found is None:
            raise
        return found
    return row


async def fleet_account(
    db_session: AsyncSession,
    issuer: BillingIssuer,
    fleet_id: int,
    buyer: Identity | None = None,
    *,
    currency: str | None = None,
    language: str = "en",
    timezone: str = "UTC",
) -> BillingAccount:
    """The fleet's account with ``issuer`` in ``currency`` (the issuer's by default); created with ``buyer``."""
    return await _account(db_session, issuer, FLEET, buyer, currency, language, timezone, fleet_id=fleet_id)


async def driver_account(
    db_session: AsyncSession,
    issuer: BillingIssuer,
    token_id: int,
    buyer: Identity | None = None,
    *,
    currency: str | None = None,
    language: str = "en",
    timezone: str = "UTC",
) -> BillingAccount:
    """The account of a driver without a contract (by token) with ``issuer``; created with ``buyer``."""
    return await _account(db_session, issuer, DRIVER, buyer, currency, language, timezone, token_id=token_id)


async def party_account(
    db_session: AsyncSession,
    issuer: BillingIssuer,
    party_id: int,
    buyer: Identity | None = None,
    *,
    currency: str | None = None,
    language: str = "en",
    timezone: str = "UTC",
) -> BillingAccount:
    """A party's account (a CPO or eMSP billed for B2B documents) with ``issuer``; created with ``buyer``."""
    return await _account(db_session, issuer, PARTY, buyer, currency, language, timezone, party_id=party_id)


def summary(account: BillingAccount) -> dict[str, Any]:
    """The account as the CLI and API show it."""
    return {
        "id": account.id,
        "kind": account.kind,
        "currency": account.currency,
        "buyer": account.buyer.get("legal_name"),
        "language": account.language,
        "timezone": account.timezone,
        "payment_method": account.payment_method_label,
        "auto_collect": account.auto_collect,
    }
