"""An operator's credit note and the refund it makes owed, in one transaction: what the CLI and the API issue.

:func:`credit_invoice` is :func:`billing.store.credits.credit_document` (full or partial, with a reason, never
beyond what is left) followed by :func:`billing.payments.refunds.request_refund`: when the invoice was paid by
card or SEPA debit, the amount now owed back is refunded through the provider after commit. A correction CDR's
credit note does the same in billing's CDR hook (:mod:`billing.cdr_hook`).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from billing.payments.refunds import request_refund
from billing.store.credits import credit_document
from kernel.models import BillingDocument


async def credit_invoice(
    db_session: AsyncSession,
    number: str,
    issuer_key: str | None = None,
    amount: Decimal | None = None,
    *,
    reason: str,
    issue_date: date | None = None,
    key: str | None = None,
) -> BillingDocument:
    """The operator's credit note against invoice ``number`` (see ``credit_document``), its refund queued."""
    note = await credit_document(
        db_session, number, issuer_key, amount, reason=reason, issue_date=issue_date, key=key
    )
    await request_refund(db_session, note)
    return note
