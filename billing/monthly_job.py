"""The monthly invoices job: every fleet account's invoice of the month that just ended, once.

:func:`run_monthly_job` runs hourly (``BillingComponent``): for every fleet account, the previous month by the
account's own time zone and the hub's clock (:func:`kernel.timeutil.utcnow`), issued if missing
(:func:`issue_monthly_invoice`, idempotent and safe against a concurrent run on another
node), in bulk: a transaction per batch of accounts (:mod:`billing.store.monthly_bulk`), the accounts the bulk
path does not build each in its own transaction; one that fails is logged and the others go on. It also
catches up on the CDR hook's documents that a failure left unissued (:func:`billing.cdr_hook.catch_up`).
"""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.cdr_hook import catch_up
from billing.payments.collection import request_collection
from billing.store import monthly
from billing.store.accounts import FLEET
from billing.store.monthly import monthly_invoice_of, previous_period
from billing.store.monthly_bulk import issue_period
from kernel.components import Hub
from kernel.models import BillingAccount, BillingDocument
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)


async def issue_monthly_invoice(
    db_session: AsyncSession, account_id: int, period: str, issue_date: date | None = None
) -> BillingDocument | None:
    """:func:`billing.store.monthly.issue_monthly_invoice`, and a new invoice's collection requested in the same
    transaction (:func:`billing.payments.collection.request_collection`): what the job, the CLI and the API
    issue."""
    return await monthly.issue_monthly_invoice(
        db_session, account_id, period, issue_date, on_issue=request_collection
    )


async def run_monthly_job(hub: Hub) -> int:
    """Issue every monthly invoice due (the previous month's, per fleet account) and the CDR hook's documents
    still missing; the number of documents issued. The invoices go through the bulk path
    (:func:`billing.store.monthly_bulk.issue_period`, a transaction per batch of accounts), which hands the
    accounts it does not build (fees, lines outside the scope of VAT: split, or held) to
    :func:`issue_monthly_invoice`, one transaction each."""
    now = utcnow()
    issued = await catch_up(hub.db, now)
    async with hub.db.session() as db_session:
        accounts = (
            await db_session.execute(
                select(BillingAccount.id, BillingAccount.timezone)
                .where(BillingAccount.kind == FLEET)
                .order_by(BillingAccount.id)
            )
        ).all()
    by_period: dict[str, list[int]] = {}
    for account_id, timezone in accounts:
        by_period.setdefault(previous_period(now, timezone), []).append(account_id)

    async def one(account_id: int, period: str) -> bool:
        async with hub.db.session() as db_session:
            account = await db_session.get(BillingAccount, account_id)
            if account is None or await monthly_invoice_of(db_session, account, period) is not None:
                return False
            row = await issue_monthly_invoice(db_session, account_id, period)
        if row is not None:
            log.info("issued monthly invoice %s of account %s for %s", row.number, account_id, period)
        return row is not None

    for period, ids in sorted(by_period.items()):
        count = await issue_period(hub.db, ids, period, on_issue=request_collection, per_account=one)
        if count:
            log.info("issued %d monthly invoice(s) for %s", count, period)
        issued += count
    return issued
