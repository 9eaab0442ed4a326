"""``evhub simulate chargers`` drives real sessions into a running hub."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from sqlalchemy import func, select

from evhub import provisioning as prov
from evhub.app import RunningHub
from evhub.db.engine import Database
from evhub.models import ChargingSession
from evhub.settings import load_settings
from tests.conftest import OCPI_EXAMPLES, free_port

EVHUB = str(Path(sys.executable).with_name("evhub"))


async def test_simulated_chargers_complete_sessions(db: Database) -> None:
    async with db.session() as s:
        await prov.add_party(s, "BE", "BEC", "CPO", "BeCharged")
        await prov.add_party(s, "BE", "EMS", "EMSP", "eMSP")
        await prov.import_location(s, json.loads((OCPI_EXAMPLES / "location_example.json").read_text()))
        await prov.add_charger(s, "SIM00001", password="sim-password", location="LOC1", evse_uids=["3256"])
        await prov.add_charger(
            s, "SIM00002", password="sim-password", location="LOC1", evse_uids=["3257"], ocpp_version="2.0.1"
        )
        await prov.add_token(s, prov.TokenSpec(uid="AABBCC01", issuer_party="BE*EMS"))
    from cpo_gateway.component import GatewayComponent

    ocpp_port = free_port()
    settings = load_settings(
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=0,
        ocpp_host="127.0.0.1",
        ocpp_port=ocpp_port,
        _env_file=None,
    )
    hub = RunningHub(settings, components=[GatewayComponent()])
    await hub.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            EVHUB,
            "simulate",
            "chargers",
            "--count",
            "2",
            "--version",
            "mixed",
            "--url",
            f"ws://127.0.0.1:{ocpp_port}/ocpp",
            "--acceleration",
            "3000",
            "--sessions",
            "1",
            env=dict(os.environ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        await hub.stop()
    assert proc.returncode == 0, output.decode()
    stats = json.loads(output.decode()[output.decode().index("{") :])
    assert stats["sessions_completed"] == 2 and stats["errors"] == 0
    async with db.session() as s:
        ended = await s.scalar(
            select(func.count()).select_from(ChargingSession).where(ChargingSession.end_time.is_not(None))
        )
    assert ended == 2
