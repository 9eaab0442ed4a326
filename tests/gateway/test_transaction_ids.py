"""Issue 12, M6 "A StartTransaction acknowledged but not stored (transaction id collides)": the transaction id
the hub gives a 1.6 StartTransaction is free on that charger and stored before the charger is answered, and a
hook's savepoint can only hold the hook's own writes (the caller's pending state is flushed before it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway.charger_store import ChargerStore
from cpo_gateway.events import MeterValues, Sample
from cpo_gateway.hook_runner import run_hooks
from cpo_gateway.server import Gateway
from cpo_gateway.session_store import SessionStore
from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession
from kernel.seams import Hooks
from tariffs.rating import rate_pending
from tests.gateway.conftest import DEFAULT_TARIFF, T0, Seed, gateway_settings, iso, open_client


def mv(ts: Any, wh: int, context: str = "Sample.Periodic") -> dict[str, Any]:
    sv = {"value": str(wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"timestamp": iso(ts), "sampledValue": [sv]}


@pytest.fixture
async def hooked_gateway(db: Database, seeded: Seed, database_url: str) -> AsyncIterator[Gateway]:
    """A gateway with a session hook (as the hub wires OCPI's push), so a savepoint is opened after a start."""
    pushed: list[str] = []

    async def push(_db_session: AsyncSession, session: ChargingSession) -> None:
        pushed.append(session.session_uid)

    gw = Gateway(gateway_settings(database_url), db, "node-a", hooks=Hooks(session=[push]))
    await gw.start("127.0.0.1", 0)
    try:
        yield gw
    finally:
        await gw.stop()


async def _by_tx(db: Database, tx: int | str) -> ChargingSession | None:
    async with db.session() as s:
        return await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == str(tx)))


async def test_start_gets_a_free_transaction_id_and_is_priced(hooked_gateway: Gateway, db: Database) -> None:
    async with db.session() as s:
        await prov.import_tariff(s, DEFAULT_TARIFF)
    c = await open_client(hooked_gateway, "CP16", "ocpp1.6")
    # a session of a transaction the charger reported (id N) comes first; the next session row gets id N+1
    await c.ok("MeterValues", {"connectorId": 2, "transactionId": 900000, "meterValue": [mv(T0, 5)]})
    dummy = await _by_tx(db, 900000)
    assert dummy is not None
    collide = dummy.id + 2
    # the charger reports transaction N+2 (after a restore, say): its session takes id N+1
    await c.ok("MeterValues", {"connectorId": 2, "transactionId": collide, "meterValue": [mv(T0, 50)]})
    old = await _by_tx(db, collide)
    assert old is not None and old.id == dummy.id + 1
    # the new start's session row is N+2, whose natural transaction id is taken
    answer = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000,
                                             "timestamp": iso(T0)})  # fmt: skip
    tx = answer["transactionId"]
    assert tx != collide
    new = await _by_tx(db, tx)
    assert new is not None and new.id != old.id and new.meter_start_wh == 1000
    await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx,
                               "meterValue": [mv(T0 + timedelta(minutes=30), 7000)]})  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 13000,
                                   "timestamp": iso(T0 + timedelta(hours=1))})  # fmt: skip
    await c.close()
    assert await rate_pending(db, ()) == 1
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr))
        assert cdr is not None and cdr.session_id == new.id
        assert cdr.total_energy_kwh == Decimal("12")
        untouched = await s.get(ChargingSession, old.id)
        assert untouched is not None and untouched.end_time is None and untouched.meter_start_wh is None
        assert await s.scalar(select(func.count()).select_from(Cdr)) == 1


async def test_hook_savepoint_keeps_callers_write_error(db: Database, seeded: Seed) -> None:
    loaded = await ChargerStore(db).load_charger("CP16")
    assert loaded is not None
    ref = loaded[1]
    store = SessionStore(db)
    for tx in ("A", "B"):
        await store.meter_values(ref, MeterValues(tx, 1, (Sample(T0, Decimal(1)),)))
    ran: list[int] = []

    async def hook(_db_session: AsyncSession, session: ChargingSession) -> None:
        ran.append(session.id)

    with pytest.raises(IntegrityError):
        async with db.session() as s:
            b = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == "B"))
            assert b is not None
            b.transaction_id = "A"  # the caller's pending write violates the unique key
            await run_hooks(s, "session", [hook], b)
    assert ran == []
    assert await _by_tx(db, "B") is not None
