"""The dunning job: every dunning step due today, for every unpaid invoice, done once (``billing.store.dunning``).

Only the open invoices are read (selected in SQL: due, something outstanding or a hold to release), and a
party's (B2B) invoice gets its issuer's reminders only, never a retry, a hold or a fee.

Run by ``evhub serve``'s scheduler (``billing-dunning``, hourly) and by ``evhub dunning run``. "Today" is the
hub's clock in each account's time zone; several processes may run it at once (each step is claimed by its
UNIQUE key in the transaction that makes its effect). A payment retry is made by the payments part's
``billing.payments.collection.collect_document(db, document_id, attempt)``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from billing.payments import collection
from billing.store.dunning import run_dunning
from kernel.components import Hub
from kernel.db.engine import Database


def collector() -> Any:
    """The payments part's ``collect_document``, or None where it is not there."""
    return getattr(collection, "collect_document", None)


async def dun(db: Database, *, today: date | None = None, issuer_key: str | None = None) -> int:
    """Do every dunning step due (on ``today``, else each account's local date now); the number done."""
    return await run_dunning(db, today=today, issuer_key=issuer_key, collect=collector())


async def run_dunning_job(hub: Hub, today: date | None = None) -> int:
    """Do every dunning step due today (or on ``today``); the number of steps done."""
    return await dun(hub.db, today=today)
