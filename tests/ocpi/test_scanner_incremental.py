"""The push scanner is incremental (issue 15: an idle hub with 1,896 recent sessions sat at 60-93 % CPU, the
scanner re-reading every session of the last 7 days every 15 s): after its first full sweep, a scan of an idle
hub runs a bounded number of queries, whatever the number of recent sessions; a session that changes is still
seen by the next scan, and a new partner, or the hourly sweep, looks at everything again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, select

from kernel.db.engine import Database
from kernel.models import ChargingSession, OutboxMessage, SessionStatus
from kernel.timeutil import utcnow
from tests.ocpi._pushes import seed_push_world

RECENT = 150
IDLE_QUERIES = 12
"""What an idle incremental scan may cost: a handful of indexed queries that find nothing, never per row."""


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``db`` inside the block by this task (not the fixture's dispatcher loop)."""
    statements: list[str] = []
    task = asyncio.current_task()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if asyncio.current_task() is task:
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def _recent_sessions(db: Database, cpo: int, loc: int, cp: int, token_id: int) -> list[int]:
    now = utcnow()
    async with db.session() as s:
        rows = [
            ChargingSession(
                session_uid=str(uuid.uuid4()),
                charge_point_id=cp,
                transaction_id=f"T{n}",
                cpo_id=cpo,
                location_id=loc,
                token_id=token_id,
                status=SessionStatus.COMPLETED,
                start_time=now - timedelta(days=2, hours=1),
                end_time=now - timedelta(days=2),
                last_updated=now - timedelta(days=2) + timedelta(seconds=n),
            )
            for n in range(RECENT)
        ]
        s.add_all(rows)
        await s.flush()
        return [r.id for r in rows]


async def _queued(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def test_an_idle_hub_scans_cheaply(hub, sim) -> None:
    cpo, loc, cp, _partner, token = await seed_push_world(hub, sim)
    ids = await _recent_sessions(hub.db, cpo, loc, cp, token.id)
    with counted(hub.db) as first:
        assert await hub.component.scan_once() >= RECENT  # the first scan sweeps: every session is queued
    assert len(first) > RECENT

    for _ in range(3):  # idle: nothing changed, and the work does not grow with the recent sessions
        with counted(hub.db) as idle:
            assert await hub.component.scan_once() == 0
        assert len(idle) <= IDLE_QUERIES, idle

    async with hub.db.session() as s:  # a change no hook pushed (a lost hook) is still found
        changed = await s.get(ChargingSession, ids[7])
        assert changed is not None
        changed.last_updated = utcnow()
    before = await _queued(hub.db)
    with counted(hub.db) as one:
        assert await hub.component.scan_once() == 1
    assert await _queued(hub.db) == before + 1
    assert len(one) <= IDLE_QUERIES + 30, one  # that one session's object, not the other 149


async def test_a_full_sweep_when_due(hub, sim) -> None:
    cpo, loc, cp, _partner, token = await seed_push_world(hub, sim)
    await _recent_sessions(hub.db, cpo, loc, cp, token.id)
    assert await hub.component.scan_once() >= RECENT
    scanner = hub.component.scanner
    assert scanner is not None and scanner.mark is not None
    scanner.full_every = timedelta(0)  # the hourly sweep is due
    with counted(hub.db) as sweep:
        assert await hub.component.scan_once() == 0  # idempotent: everything was queued already
    assert len(sweep) > RECENT
