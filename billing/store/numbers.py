"""The gap-free number allocator: one counter row per issuer, series and period, taken in the issuing transaction.

:func:`allocate` creates the counter row if it is missing (an insert that ignores a concurrent one), then
reads it ``FOR UPDATE`` (PostgreSQL locks the row until the transaction ends; SQLite's ``BEGIN IMMEDIATE``
already serialises writers) and increments it. The caller inserts its document in the same transaction: a
rollback undoes the increment too, so no number is ever lost, and a concurrent issuer waits for the lock and
takes the next number, so no number is issued twice. Issue dates never go backwards in a series.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.numbering import NumberingError, Series
from kernel.models.billing import BillingNumberSeries


@dataclass(frozen=True, slots=True)
class Allocated:
    """A number taken: the period (year, 0 for a running series), the sequence and the written number."""

    period: int
    sequence: int
    number: str


async def lock(
    db_session: AsyncSession, issuer_id: int, series: Series, issue_date: date
) -> BillingNumberSeries:
    """The counter row of ``series`` for ``issuer_id`` in ``issue_date``'s period, created if missing and locked
    until the transaction ends (a second issuer of the same series waits here)."""
    keys = {"issuer_id": issuer_id, "series": series.prefix, "period": series.period(issue_date) or 0}
    bind = db_session.bind
    insert = postgresql.insert if bind is not None and bind.dialect.name == "postgresql" else sqlite.insert
    await db_session.execute(
        insert(BillingNumberSeries)
        .values(**keys, next_number=1)
        .on_conflict_do_nothing(index_elements=list(keys))
    )
    statement = (
        select(BillingNumberSeries)
        .filter_by(**keys)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await db_session.execute(statement)).scalar_one()


def take(counter: BillingNumberSeries, series: Series, issue_date: date) -> Allocated:
    """Take the counter's next number (the counter must be locked, :func:`lock`)."""
    if counter.last_issue_date is not None and issue_date < counter.last_issue_date:
        raise NumberingError(
            f"series {series.prefix}: issue date {issue_date} is before the last issued ({counter.last_issue_date})"
        )
    sequence = counter.next_number
    counter.next_number = sequence + 1
    counter.last_issue_date = issue_date
    return Allocated(counter.period, sequence, series.format(issue_date.year, sequence))


async def allocate(db_session: AsyncSession, issuer_id: int, series: Series, issue_date: date) -> Allocated:
    """Take the next number of ``series`` for ``issuer_id`` in the current transaction (see the module)."""
    allocated = take(await lock(db_session, issuer_id, series, issue_date), series, issue_date)
    await db_session.flush()
    return allocated
