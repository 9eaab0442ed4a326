"""(stub) billing's CDR hook: the per-session invoice of a driver without a contract, the credit note of a credit
CDR, in the CDR's transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Cdr


async def billing_cdr_hook(db_session: AsyncSession, cdr: Cdr) -> None:
    """For ``hub.hooks.cdr`` (run by pricing in the CDR's transaction, before the portal's receipt hook)."""
    return None
