"""The group-commit writer (its own SQLite connection / one PostgreSQL statement per batch) stores exactly what
the ORM path stores, commits before ``write`` returns, and a replay adds nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select, text

from cpo_gateway.events import MeterValues, Sample, SessionStarted
from cpo_gateway.meter_rules import sample_rows
from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import ChargingSession
from tests.gateway.conftest import T0, Seed

SAMPLES = (
    Sample(timestamp=T0 + timedelta(microseconds=123456), value=Decimal("1234.567891")),
    Sample(timestamp=T0, value=Decimal("12.5"), unit="kWh", context="Transaction.Begin"),
    Sample(timestamp=T0, value=Decimal("230"), measurand="Voltage", unit="V", phase="L1-N"),
    Sample(
        timestamp=T0,
        value=Decimal(0),
        unit="SignedData",
        context="Transaction.Begin",
        signed_data='OCMF|{"RV":"1.5"}|é✓',
    ),
)


async def _raw(db: Database, session_id: int) -> list[tuple]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT timestamp, measurand, phase, location, context, unit, value, signed_data FROM meter_values "
                "WHERE session_id = :sid ORDER BY timestamp, measurand, context"
            ),
            {"sid": session_id},
        )
        return [tuple(r) for r in rows]


async def test_writer_stores_what_the_orm_stores(gateway: Gateway, db: Database, seeded: Seed) -> None:
    sessions, writer = gateway.sessions, gateway.meter_writer
    loaded = await gateway.chargers.load_charger("CP201")
    assert loaded is not None
    ref = loaded[1]
    a = await sessions.started(ref, SessionStarted("TA", 1, 1, None, T0), None)
    b = await sessions.started(ref, SessionStarted("TB", 2, 1, None, T0), None)

    # B through the ORM (the path of a first event), A through the group commit, twice at once (a replay)
    await sessions.meter_values(ref, MeterValues("TB", 2, SAMPLES))
    update = [{"sid": a.id, "energy": Decimal("222.5"), "now": T0 + timedelta(hours=1)}]
    await asyncio.gather(*(writer.write(sample_rows(a.id, SAMPLES), update) for _ in range(2)))

    stored_a, stored_b = await _raw(db, a.id), await _raw(db, b.id)
    assert len(stored_a) == 3  # the SignedData sample is merged into the plain one with the same key
    assert stored_a == stored_b
    async with db.session() as db_session:
        session = await db_session.scalar(select(ChargingSession).where(ChargingSession.id == a.id))
    assert session.energy_wh == Decimal("222.5") and session.last_updated == T0 + timedelta(hours=1)


UNIFORM = (  # the usual message: periodic energy readings only (one statement with scalar columns on PostgreSQL)
    Sample(timestamp=T0, value=Decimal("1000")),
    Sample(timestamp=T0 + timedelta(minutes=1), value=Decimal("1250.125")),
    Sample(timestamp=T0 + timedelta(minutes=1), value=Decimal("9999")),  # same key again: the first is kept
    Sample(timestamp=T0 + timedelta(minutes=2), value=Decimal("1.5E+3")),
)


async def test_uniform_batches_store_what_the_orm_stores(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    sessions, writer = gateway.sessions, gateway.meter_writer
    loaded = await gateway.chargers.load_charger("CP201")
    assert loaded is not None
    ref = loaded[1]
    a = await sessions.started(ref, SessionStarted("UA", 1, 1, None, T0), None)
    b = await sessions.started(ref, SessionStarted("UB", 2, 1, None, T0), None)
    await sessions.meter_values(ref, MeterValues("UB", 2, UNIFORM))
    await asyncio.gather(*(writer.write(sample_rows(a.id, UNIFORM), []) for _ in range(2)))
    stored_a, stored_b = await _raw(db, a.id), await _raw(db, b.id)
    assert [Decimal(str(r[6])) for r in stored_a] == [Decimal("1000"), Decimal("1250.125"), Decimal("1500")]
    assert stored_a == stored_b
