"""The component inside the real process assembly (evhub.app.RunningHub): scheduler-driven delivery."""

from __future__ import annotations

import httpx
import pytest

from evhub.app import RunningHub
from kernel.ports import free_port
from kernel.settings import Settings
from ocpi.component import OcpiComponent
from ocpi.partners import invite_partner
from tests.ocpi._helpers import token_pk
from tests.world.cdrs import seed_cdr
from tests.world.sessions import seed_session
from tests.world.sites import seed_charge_point, seed_cpo, seed_location


@pytest.mark.real_sockets  # the assembled process serves HTTP itself
async def test_serve_with_ocpi_component_delivers_by_itself(db, sim):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=db.url, http_host="127.0.0.1", http_port=port, public_url=url, auto_migrate=True
    )
    running = RunningHub(settings, [OcpiComponent(dispatch_interval=0.1, scan_interval=0.3)])
    await running.start()
    try:
        cpo = await seed_cpo(db)
        loc = await seed_location(db, cpo, "LOC1")
        cp = await seed_charge_point(db, cpo, loc)
        inv = await invite_partner(db, url, "Sim", roles=[(sim.country_code, sim.party_id, "EMSP")])
        await sim.register(inv.versions_url, inv.token_a)
        await sim.push_token(sim.make_token("C1"))
        token = await token_pk(db, "C1")
        sid = await seed_session(db, cpo, cp, loc, token, "S1")
        # nobody calls enqueue_*: the scanner and the scheduled dispatcher deliver the location and the CDR
        await seed_cdr(db, sid, cpo, token.emsp_id, "CDR-S1")
        await sim.wait_for(lambda: "LOC1" in sim.locations and len(sim.cdrs) == 1, timeout=15)
        async with httpx.AsyncClient(timeout=60.0) as http:
            r = await http.get(f"{url}/metrics")
            assert 'evhub_outbox_delivered_total{channel="ocpi"}' in r.text
            r = await http.get(f"{url}/ocpi/versions")
            assert r.status_code == 401 and r.json()["status_code"] == 2000
            r = await http.get(f"{url}/api/partners/{inv.partner_id}/health")
            assert r.json()["status"] == "registered"
    finally:
        await running.stop()
