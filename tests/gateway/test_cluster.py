"""Cluster mode on PostgreSQL: two gateways sharing one database route commands over LISTEN/NOTIFY, and a
gateway whose LISTEN connection is killed reconnects and receives commands again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from cpo_gateway.cluster import PgRouter
from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from tests.gateway.conftest import Seed, gateway_settings, open_client


@pytest.fixture
async def pair(db: Database, seeded: Seed, database_url: str) -> AsyncIterator[tuple[Gateway, Gateway]]:
    if db.is_sqlite:
        pytest.skip("cluster mode needs PostgreSQL (LISTEN/NOTIFY)")
    db_b = Database(database_url)
    gws = [
        Gateway(gateway_settings(database_url, ocpp_command_timeout=3), db, "node-a"),
        Gateway(gateway_settings(database_url, ocpp_command_timeout=3), db_b, "node-b"),
    ]
    for gw in gws:
        assert isinstance(gw.router, PgRouter)
        gw.router.backoff_initial = 0.2
        await gw.start("127.0.0.1", 0)
    try:
        yield gws[0], gws[1]
    finally:
        for gw in gws:
            await gw.stop()
        await db_b.dispose()


async def _kill_listener(db: Database, router: PgRouter) -> None:
    pid = router.conn.get_server_pid()
    async with db.session() as db_session:
        assert await db_session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def _wait_reconnected(router: PgRouter, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while router.reconnects < count or not router.listening.is_set():
        assert time.monotonic() < deadline, "the LISTEN connection did not come back"
        await asyncio.sleep(0.05)


async def test_listener_reconnects_after_backend_terminated(
    pair: tuple[Gateway, Gateway], db: Database
) -> None:
    gw_a, gw_b = pair
    charger = await open_client(gw_b, "CP201", "ocpp2.0.1")
    charger.auto_reply["ClearCache"] = {"status": "Accepted"}
    charger.auto_reply["Reset"] = {"status": "Scheduled"}
    await charger.ok("Heartbeat", {})
    # routed from A to the charger on B before anything breaks
    assert await gw_a.send("CP201", "ClearCache", {}) == {"status": "Accepted"}

    # both listeners die: B must hear the command again and A must hear B's answer again
    old_pids = {gw_a.router.conn.get_server_pid(), gw_b.router.conn.get_server_pid()}
    await _kill_listener(db, gw_b.router)
    await _kill_listener(db, gw_a.router)
    await _wait_reconnected(gw_b.router, 1)
    await _wait_reconnected(gw_a.router, 1)
    assert {gw_a.router.conn.get_server_pid(), gw_b.router.conn.get_server_pid()}.isdisjoint(old_pids)

    assert await gw_a.send("CP201", "Reset", {"type": "Immediate"}, timeout=3) == {"status": "Scheduled"}
    seen = [m[2] for m in [charger.incoming.get_nowait() for _ in range(charger.incoming.qsize())]]
    assert seen == ["ClearCache", "Reset"]
    await charger.close()


async def test_reconnect_closes_connections_taken_over_while_deaf(
    pair: tuple[Gateway, Gateway], db: Database
) -> None:
    """A charger that moved to another process while this one could not hear the announcement is closed
    here once the listener is back (the database says where it is now)."""
    _gw_a, gw_b = pair
    old = await open_client(gw_b, "CP16", "ocpp1.6")
    await old.ok("Heartbeat", {})
    # what a connection to A would have written, with its announcement lost because B was not listening
    async with db.session() as db_session:
        await db_session.execute(
            text("UPDATE charge_points SET connected_node = 'node-a' WHERE identity = 'CP16'")
        )
    await _kill_listener(db, gw_b.router)
    await _wait_reconnected(gw_b.router, 1)
    assert await old.wait_closed() == 1000
    assert "CP16" not in gw_b.connections
    async with db.session() as db_session:  # B did not mark the charger offline: it is A's now
        row = (
            await db_session.execute(
                text("SELECT status, connected_node FROM charge_points WHERE identity = 'CP16'")
            )
        ).one()
    assert tuple(row) == ("online", "node-a")
