"""The gap-free allocator under concurrency (issue 14): concurrent issuing transactions on separate connections,
some rolled back on purpose, give the numbers 1..k, no gap, no duplicate; two concurrent issues of one CDR give
one invoice. On PostgreSQL every transaction has started before any takes a number (the counter row lock is
what orders them); SQLite serialises its writers (``BEGIN IMMEDIATE``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

import billing
from billing.core.numbering import Series, check_sequence
from kernel.db.engine import Database
from kernel.models import BillingDocument, BillingNumberSeries
from tests.billing.store_kit import CONSUMER, ISSUE, add_cdrs, add_issuer
from tests.billing.store_kit import issue as issue_one

N = 12
Job = Callable[[AsyncSession], Awaitable[object]]


class RolledBack(Exception):
    """Raised inside a transaction on purpose, after its number was taken."""


async def _concurrently(db: Database, jobs: list[Job]) -> list[object]:
    """Run ``jobs`` each in its own transaction; on PostgreSQL all have begun before any goes on."""
    started = 0
    go = asyncio.Event()

    async def run(job: Job) -> object:
        nonlocal started
        async with db.session() as s:
            if not db.is_sqlite:  # SQLite: BEGIN IMMEDIATE holds the write lock, the others wait for it
                await s.execute(text("SELECT 1"))
                started += 1
                if started == len(jobs):
                    go.set()
                await asyncio.wait_for(go.wait(), timeout=30)
            return await job(s)

    return await asyncio.gather(*(run(j) for j in jobs), return_exceptions=True)


async def test_concurrent_issues_with_rollbacks_leave_no_gap_and_no_duplicate(db: Database) -> None:
    cdr_ids = await add_cdrs(db, N)
    await add_issuer(db)

    def job(i: int, cdr_id: int) -> Job:
        async def issue(s: AsyncSession) -> object:
            doc = await billing.issue_session_invoice(
                s,
                issuer_key="voltstreet",
                cdr_id=cdr_id,
                buyer=CONSUMER,
                issue_date=ISSUE,
            )
            if i % 3 == 1:
                raise RolledBack(doc.number)
            return doc.number

        return issue

    results = await _concurrently(db, [job(i, c) for i, c in enumerate(cdr_ids)])
    rolled = [r for r in results if isinstance(r, RolledBack)]
    issued = [r for r in results if isinstance(r, str)]
    assert len(rolled) == N // 3 and len(issued) == N - N // 3, results
    async with db.session() as s:
        rows = (await s.execute(select(BillingDocument).order_by(BillingDocument.sequence))).scalars().all()
        counter = await s.scalar(select(BillingNumberSeries.next_number))
    assert sorted(issued) == [r.number for r in rows]
    assert [r.sequence for r in rows] == list(range(1, len(issued) + 1))
    check_sequence(Series("INV"), [(r.issue_date, r.number) for r in rows])
    assert counter == len(issued) + 1


async def test_concurrent_issues_of_one_cdr_give_one_invoice(db: Database) -> None:
    [first, cdr_id] = await add_cdrs(db, 2)
    await add_issuer(db)
    await issue_one(db, first)  # the counter row exists: only its lock orders the concurrent issues

    async def issue(s: AsyncSession) -> object:
        doc = await billing.issue_session_invoice(
            s,
            issuer_key="voltstreet",
            cdr_id=cdr_id,
            buyer=CONSUMER,
            issue_date=ISSUE,
        )
        return doc.number

    results = await _concurrently(db, [issue] * 4)
    assert results == ["INV-2026-000002"] * 4
    async with db.session() as s:
        assert len((await s.execute(select(BillingDocument))).scalars().all()) == 2
        assert await s.scalar(select(BillingNumberSeries.next_number)) == 3
