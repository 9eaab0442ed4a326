"""(stub, filled in by the payments part) collecting an invoice through the account's payment provider."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import BillingDocument


async def request_collection(db_session: AsyncSession, document: BillingDocument) -> None:
    """Queue the automatic collection of a just-issued invoice, in the issuing transaction (durable: the
    charge itself is made after commit, with the invoice's id as idempotency key). No-op for a document
    without an account, an account without a payment method or with ``auto_collect`` off."""
    return None
