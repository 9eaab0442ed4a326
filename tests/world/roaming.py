"""A whole roaming world over real sockets: the hub (``RunningHub`` without the portal) on the demo network,
an eMSP simulator registered through the real OCPI handshake, and one simulated OCPP 1.6 charger
(``AMS-CP-1`` on EVSE ``AMS-01-1``) that starts nothing of its own, so the test drives it (through OCPI
commands). Used by the end-to-end roaming tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from evhub import provisioning as prov
from evhub.app import RunningHub, load_components
from kernel.db.engine import Database
from kernel.ports import free_port
from kernel.settings import load_settings
from ocpi.partners import invite_partner
from simulators.chargepoints import ChargerFleet, ChargerSpec
from simulators.emsp import EmspSimulator
from tests.world.demo_network import seed_demo_network


@asynccontextmanager
async def roaming_world(
    db: Database, *, name: str, password: str
) -> AsyncIterator[tuple[RunningHub, EmspSimulator, ChargerFleet]]:
    """(hub, eMSP simulator named ``name``, charger fleet); everything stops on exit."""
    await seed_demo_network(db, parties=["NL*AMP"], countries=["NL"], grid_zones=False)
    async with db.session() as s:
        await prov.add_charger(
            s,
            "AMS-CP-1",
            password=password,
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
    sim = EmspSimulator(country_code="DE", party_id="EMS", name=name)
    await sim.start(0)
    fleet = None
    try:
        invitation = await invite_partner(hub.db, settings.public_url, name, roles=[("DE", "EMS", "EMSP")])
        await sim.register(invitation.versions_url, invitation.token_a)
        # The charger would start sessions of its own only after a very long idle time: here it waits for us.
        spec = ChargerSpec(
            identity="AMS-CP-1",
            password=password,
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
