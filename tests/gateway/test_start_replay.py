"""Issue 12, M7 "Duplicate 1.6 session when StartTransaction is resent on a new connection during a DB stall":
the replay check of a 1.6 StartTransaction is serialised per charger (the first start's transaction is still
open when the resent one arrives), and idTag is compared case-insensitively (OCPP 1.6 idTag is CiString20)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway.charger_store import ChargerStore
from cpo_gateway.events import SessionStarted
from cpo_gateway.session_store import SessionStore
from kernel.db.engine import Database
from kernel.models import ChargingSession
from kernel.seams import Hooks
from tests.gateway.conftest import T0, Seed, wait_until


async def test_resent_start_during_a_stall_is_the_same_session(
    db: Database, seeded: Seed, database_url: str
) -> None:
    loaded = await ChargerStore(db).load_charger("CP16")
    assert loaded is not None
    ref = loaded[1]
    inside = asyncio.Event()
    release = asyncio.Event()

    async def stall(_db_session: AsyncSession, _session: ChargingSession) -> None:
        if not inside.is_set():  # the first start stalls inside its transaction (its answer never arrives)
            inside.set()
            await release.wait()

    second_db = Database(database_url)  # the new connection: another pool, another database connection
    try:
        first = SessionStore(db, Hooks(session=[stall]))
        second = SessionStore(second_db, Hooks(session=[stall]))
        start = SessionStarted(None, 1, 1, "AABBCC01", T0, Decimal(1000))
        a = asyncio.create_task(first.start_v16(ref, start, None))
        await asyncio.wait_for(inside.wait(), 10)
        b = asyncio.create_task(second.start_v16(ref, replace(start, id_tag="aabbcc01"), None))

        async def second_waits() -> bool:
            if second_db.engine.sync_engine.pool.checkedout() < 1 or b.done():  # type: ignore[attr-defined]
                return False
            if db.is_sqlite:
                return True  # its BEGIN IMMEDIATE waits for the first start's transaction
            async with db.engine.connect() as conn:
                waiting = await conn.scalar(
                    text(
                        "select count(*) from pg_stat_activity"
                        " where datname = current_database() and wait_event_type = 'Lock'"
                    )
                )
            return bool(waiting)

        await wait_until(second_waits, "the resent start waits for the first one's transaction")
        release.set()
        (tx_a, _), (tx_b, _) = await asyncio.gather(a, b)
    finally:
        release.set()
        await second_db.dispose()
    assert tx_a == tx_b
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(ChargingSession)) == 1
