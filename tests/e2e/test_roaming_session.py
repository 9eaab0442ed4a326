"""End to end over real sockets: an eMSP starts a session through OCPI commands, the command reaches a
simulated charger over OCPP, the session flows to the eMSP while it runs, the eMSP stops it, and the priced
CDR is POSTed to the eMSP exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from evhub.app import RunningHub
from kernel.db.engine import Database
from simulators.chargepoints import ChargerFleet
from simulators.emsp import EmspSimulator
from tests.world.roaming import roaming_world


@pytest.fixture
async def running(db: Database) -> AsyncIterator[tuple[RunningHub, EmspSimulator, ChargerFleet]]:
    async with roaming_world(db, name="e2e eMSP", password="e2e-password") as world:
        yield world


async def test_remote_start_to_cdr_at_the_emsp(running) -> None:
    hub, sim, fleet = running
    pricing = hub.hub.services.pricing
    assert pricing is not None
    response = await sim.push_token(sim.make_token("DE0EMS0000E2E"))
    assert response.status_code == 200

    ref, answer = await sim.start_session("AMS-CENTRAAL", "AMS-01-1", "1", "DE0EMS0000E2E")
    assert answer["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results, timeout=20)
    assert sim.command_results[ref]["result"] == "ACCEPTED"  # the charger said yes over OCPP

    # The session reaches the eMSP while it runs (PUT, then PATCHes with charging periods).
    await sim.wait_for(lambda: any(s.get("status") == "ACTIVE" for s in sim.sessions.values()), timeout=30)
    session_id = next(iter(sim.sessions))
    assert sim.sessions[session_id]["cdr_token"]["uid"] == "DE0EMS0000E2E"
    await sim.wait_for(lambda: fleet.chargers[0].stats.meter_values_sent >= 10, timeout=30)

    stop_ref, stop_answer = await sim.stop_session(session_id)
    assert stop_answer["result"] == "ACCEPTED"
    await sim.wait_for(lambda: stop_ref in sim.command_results, timeout=20)
    await sim.wait_for(lambda: fleet.chargers[0].stats.sessions_completed == 1, timeout=30)

    async def cdr_arrived() -> bool:
        await pricing.run_once()
        return bool(sim.cdrs)

    for _ in range(150):
        if await cdr_arrived():
            break
        await asyncio.sleep(0.2)
    assert len(sim.cdrs) == 1, "the CDR is POSTed to the eMSP exactly once"
    cdr = sim.cdrs[0]
    assert cdr["session_id"] == session_id
    assert cdr["cdr_token"]["uid"] == "DE0EMS0000E2E"
    assert Decimal(str(cdr["total_energy"])) > 0
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) > Decimal("0.50")  # start fee plus energy
    await pricing.run_once()
    assert len(sim.cdrs) == 1
