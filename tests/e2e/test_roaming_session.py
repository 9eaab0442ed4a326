"""End to end over real sockets: an eMSP starts a session through OCPI commands, the command reaches a
simulated charger over OCPP, the session flows to the eMSP while it runs, the eMSP stops it, and the priced
CDR is POSTed to the eMSP exactly once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from evhub import provisioning as prov
from evhub.app import RunningHub, load_components
from kernel.db.engine import Database
from kernel.ports import free_port
from kernel.settings import load_settings
from ocpi.partners import invite_partner
from simulators.chargepoints import ChargerFleet, ChargerSpec
from simulators.emsp import EmspSimulator
from tests.world.demo_network import seed_demo_network


@pytest.fixture
async def running(db: Database):
    await seed_demo_network(db, parties=["NL*AMP"], countries=["NL"], grid_zones=False)
    async with db.session() as s:
        await prov.add_charger(
            s,
            "AMS-CP-1",
            password="e2e-password",
            location="AMS-CENTRAAL",
            evse_uids=["AMS-01-1"],
            ocpp_version="1.6",
        )
    http_port, ocpp_port = free_port(), free_port()
    settings = load_settings(
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=http_port,
        ocpp_host="127.0.0.1",
        ocpp_port=ocpp_port,
        public_url=f"http://127.0.0.1:{http_port}",
        ocpp_rate_limit=1000,
        ocpp_rate_burst=5000,
        clock_skew=86400,  # the simulated charger's clock runs 600x: its stamps are ahead of the hub's (M8)
        _env_file=None,
    )
    hub = RunningHub(settings, components=[c for c in load_components() if c.name != "portal"])
    await hub.start()
    sim = EmspSimulator(country_code="DE", party_id="EMS", name="e2e eMSP")
    await sim.start(0)
    fleet = None
    try:
        invitation = await invite_partner(hub.db, settings.public_url, "e2e eMSP")
        await sim.register(invitation.versions_url, invitation.token_a)
        # The charger would start sessions of its own only after a very long idle time: here it waits for us.
        spec = ChargerSpec(
            identity="AMS-CP-1",
            password="e2e-password",
            version="1.6",
            tokens=["NOBODY"],
            idle_s=(1e9, 1e9),
            energy_wh=(1e9, 1e9),
        )
        fleet = ChargerFleet([spec], f"ws://127.0.0.1:{ocpp_port}/ocpp", acceleration=600)
        await fleet.start()
        await fleet.wait_connected(timeout=20)
        yield hub, sim, fleet
    finally:
        if fleet is not None:
            await fleet.stop()
        await sim.stop()
        await hub.stop()


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
