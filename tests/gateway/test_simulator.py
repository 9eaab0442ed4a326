"""The charge point simulator against the real gateway: realistic sessions in both versions, and a link that
drops mid-session (reconnect with backoff, offline queue delivered in order, nothing lost)."""

from __future__ import annotations

from sqlalchemy import func, select

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import ChargePoint, ChargingSession, MeterValue, OcppVersion, SessionStatus
from kernel.security import hash_password
from simulators.chargepoints import ChargerFleet, make_specs
from tests.gateway.conftest import Seed, wait_until


async def _register(db: Database, seeded: Seed, specs) -> None:
    pw = hash_password("sim-password")
    async with db.session() as db_session:
        for spec in specs:
            db_session.add(ChargePoint(identity=spec.identity, password_hash=pw, ocpp_version=OcppVersion(spec.version),
                              cpo_id=seeded.cpo_id, location_id=seeded.location_id))  # fmt: skip


async def test_fleet_completes_sessions_in_both_versions(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    specs = make_specs(4, version="mixed", tokens=["AABBCC01", "ROAM0001"])
    for spec in specs:
        spec.energy_wh = (400.0, 600.0)
        spec.idle_s = (1.0, 5.0)
    await _register(db, seeded, specs)
    fleet = ChargerFleet(
        specs, f"ws://127.0.0.1:{gateway.port}/ocpp", acceleration=3600, sessions_per_charger=2
    )
    await fleet.start()
    try:
        assert await fleet.wait_sessions(8, timeout=60) == 8
    finally:
        await fleet.stop()
    async with db.session() as db_session:
        sessions = (await db_session.scalars(select(ChargingSession))).all()
        n_values = await db_session.scalar(select(func.count()).select_from(MeterValue))
    assert len(sessions) == 8 and all(x.status == SessionStatus.COMPLETED for x in sessions)
    assert all(x.energy_wh > 0 and not x.flags for x in sessions), [(x.energy_wh, x.flags) for x in sessions]
    sent = sum(c.stats.meter_values_sent for c in fleet.chargers)
    assert n_values >= sent  # every periodic value stored (+ begin/end readings)


async def test_link_drop_mid_session_loses_nothing(gateway: Gateway, db: Database, seeded: Seed) -> None:
    specs = make_specs(1, version="1.6", prefix="FLAKY")
    specs[0].energy_wh = (3000.0, 3000.0)
    specs[0].max_power_w = 11000.0
    specs[0].idle_s = (1.0, 1.0)
    await _register(db, seeded, specs)
    fleet = ChargerFleet(
        specs, f"ws://127.0.0.1:{gateway.port}/ocpp", acceleration=1200, sessions_per_charger=1
    )
    await fleet.start()
    try:
        charger = fleet.chargers[0]

        async def three_sent() -> bool:
            return charger.stats.meter_values_sent >= 3

        await wait_until(three_sent, "the charger sent 3 MeterValues", timeout=30, poll=0.01)
        await gateway.connections["FLAKY00001"].close(1011, "network trouble")  # the link drops
        assert await fleet.wait_sessions(1, timeout=60) == 1
        assert charger.stats.connects >= 2
    finally:
        await fleet.stop()
    async with db.session() as db_session:
        sess = await db_session.scalar(select(ChargingSession))
        n_values = await db_session.scalar(select(func.count()).select_from(MeterValue))
    assert sess.status == SessionStatus.COMPLETED
    assert n_values == charger.stats.meter_values_sent + 1  # + the Transaction.End reading
    assert abs(sess.energy_wh - sess.meter_stop_wh + sess.meter_start_wh) < 1
