"""Issue 12, the gateway half of the session lifecycle (plan docs/plans/money-is-right.md M4, M7, M8): 1.6
StartTransaction replays found by the database's unique start key, one ACTIVE session per connector, late and
out-of-order 2.0.1 data (grace, REPRICE), implausible charger clocks flagged, held sessions listed and released
by the operator, the held-sessions gauge, and the charger's meter public key. Real websocket chargers against
the real gateway where a charger is involved; SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway.charger_store import ChargerStore
from cpo_gateway.events import SessionStarted
from cpo_gateway.server import Gateway
from cpo_gateway.session_store import SUPERSEDED_BY_NEW_START, SessionStore
from kernel.db.engine import Database
from kernel.models import ChargingSession, PricingState, SessionStatus
from kernel.seams import Hooks
from tests.gateway.conftest import T0, Seed, iso, open_client, wait_until


def mv(ts: Any, wh: int, context: str = "Sample.Periodic") -> dict[str, Any]:
    sv = {"value": str(wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"timestamp": iso(ts), "sampledValue": [sv]}


async def _sessions(db: Database) -> list[ChargingSession]:
    async with db.session() as s:
        return list((await s.scalars(select(ChargingSession).order_by(ChargingSession.id))).all())


async def _by_tx(db: Database, tx: object) -> ChargingSession:
    async with db.session() as s:
        found = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == str(tx)))
        assert found is not None, f"no session for transaction {tx}"
        return found


# -- M7: 1.6 StartTransaction replays -------------------------------------------------------------------------


async def test_parallel_resent_start_is_one_session(db: Database, seeded: Seed, database_url: str) -> None:
    """M7: the same StartTransaction handled twice at once on two database connections (the first one stalls
    inside its transaction, as in a database stall that outlasts the charger's timeout) is one session: the
    unique (charger, start key) refuses the second insert, which answers the first one's transactionId."""
    loaded = await ChargerStore(db).load_charger("CP16")
    assert loaded is not None
    ref = loaded[1]
    inside, release = asyncio.Event(), asyncio.Event()

    async def stall(_db_session: AsyncSession, _session: ChargingSession) -> None:
        if not inside.is_set():  # only the first start stalls, after its row is written, before its commit
            inside.set()
            await release.wait()

    second_db = Database(database_url)
    try:
        first = SessionStore(db, Hooks(session=[stall]))
        second = SessionStore(second_db, Hooks(session=[stall]))
        start = SessionStarted(None, 1, 1, "AABBCC01", T0, Decimal(1000))
        a = asyncio.create_task(first.start_v16(ref, start, None))
        await asyncio.wait_for(inside.wait(), 10)
        b = asyncio.create_task(second.start_v16(ref, start, None))

        async def second_is_waiting() -> bool:
            if b.done() or second_db.engine.sync_engine.pool.checkedout() < 1:  # type: ignore[attr-defined]
                return False
            if db.is_sqlite:
                return True  # its BEGIN IMMEDIATE waits for the first start's transaction
            async with db.engine.connect() as conn:
                waiting = await conn.scalar(
                    text(
                        "select count(*) from pg_stat_activity where datname = current_database()"
                        " and wait_event_type = 'Lock' and query ilike 'insert into sessions%'"
                    )
                )
            return bool(waiting)  # its INSERT waits on the first one's uncommitted start key

        await wait_until(second_is_waiting, "the second start waits for the first one's transaction")
        release.set()
        (tx_a, _), (tx_b, _) = await asyncio.gather(a, b)
    finally:
        release.set()
        await second_db.dispose()
    assert tx_a == tx_b
    rows = await _sessions(db)
    assert len(rows) == 1
    assert rows[0].transaction_id == tx_a and rows[0].start_key == f"1|{T0.isoformat()}|AABBCC01"


async def test_resent_start_with_other_case_id_tag(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """M7: idTag is a CiString20 ("case insensitive"): a StartTransaction resent on a new connection with
    idTag "ABC" after "abc" (same connector and timestamp) answers the same transactionId; one session."""
    start = {"connectorId": 1, "meterStart": 1000, "timestamp": iso(T0)}
    c = await open_client(gateway, "CP16", "ocpp1.6")
    first = await c.ok("StartTransaction", {**start, "idTag": "abc"})
    await c.close()
    c = await open_client(gateway, "CP16", "ocpp1.6")
    again = await c.ok("StartTransaction", {**start, "idTag": "ABC"})
    other = await c.ok("StartTransaction", {**start, "idTag": "ABD"})  # another idTag is another start
    await c.close()
    assert again["transactionId"] == first["transactionId"] != other["transactionId"]
    rows = await _sessions(db)
    assert [r.transaction_id for r in rows] == [str(first["transactionId"]), str(other["transactionId"])]


async def test_new_start_supersedes_the_active_session(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """M7: a connector has at most one ACTIVE session. A new start on connector 1 while its previous session
    is still ACTIVE (its stop never came) closes that one: COMPLETED at its last meter value, flag
    SUPERSEDED_BY_NEW_START, pricing HELD with the reason; the other connector's session is untouched. When
    the old stop does arrive, it ends the session as reported and hands it to pricing."""
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx1 = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000,
                                           "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    tx_other = (await c.ok("StartTransaction", {"connectorId": 2, "idTag": "AABBCC01", "meterStart": 0,
                                                "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx1,
                               "meterValue": [mv(T0 + timedelta(minutes=10), 3000)]})  # fmt: skip
    await c.close()
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx2 = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 9000,
                                           "timestamp": iso(T0 + timedelta(hours=2))}))["transactionId"]  # fmt: skip
    old, new, other = await _by_tx(db, tx1), await _by_tx(db, tx2), await _by_tx(db, tx_other)
    assert new.status == SessionStatus.ACTIVE and other.status == SessionStatus.ACTIVE
    assert old.status == SessionStatus.COMPLETED and SUPERSEDED_BY_NEW_START in old.flags
    assert old.pricing_state == PricingState.HELD and old.end_time == T0 + timedelta(minutes=10)
    assert old.energy_wh == Decimal(2000)
    assert old.review_reason is not None and old.review_reason.startswith("superseded: transaction")
    assert f"transaction {tx2} started on the same connector (1)" in old.review_reason
    # its stop, queued by the charger, arrives after all
    await c.ok("StopTransaction", {"transactionId": tx1, "meterStop": 4000,
                                   "timestamp": iso(T0 + timedelta(minutes=30))})  # fmt: skip
    await c.close()
    old = await _by_tx(db, tx1)
    assert old.status == SessionStatus.COMPLETED and SUPERSEDED_BY_NEW_START not in old.flags
    assert old.end_time == T0 + timedelta(minutes=30) and old.energy_wh == Decimal(3000)
    assert old.pricing_state == PricingState.PENDING and old.review_reason is None
    assert (await _by_tx(db, tx2)).status == SessionStatus.ACTIVE
    async with db.session() as s:
        active = await s.scalar(
            select(func.count())
            .select_from(ChargingSession)
            .where(ChargingSession.status == SessionStatus.ACTIVE, ChargingSession.ocpp_connector_id == 1)
        )
    assert active == 1
