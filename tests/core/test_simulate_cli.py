"""``evhub simulate chargers|grid``: real sessions into a running hub, and one clear line when the target
cannot be used (nothing listening there, options that cannot work)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from evhub import provisioning as prov
from evhub.app import RunningHub
from evhub.cli import app
from kernel.db.engine import Database
from kernel.models import ChargingSession
from kernel.ports import free_port
from kernel.settings import load_settings
from tests.conftest import OCPI_EXAMPLES

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
        # Identities the hub does not know: every charger is refused, and the command says so.
        refused = await asyncio.create_subprocess_exec(
            EVHUB,
            "simulate",
            "chargers",
            "--count",
            "2",
            "--prefix",
            "NOPE",
            "--acceleration",
            "3000",
            "--url",
            f"ws://127.0.0.1:{ocpp_port}/ocpp",
            env=dict(os.environ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        refused_out, refused_err = await asyncio.wait_for(refused.communicate(), timeout=120)
    finally:
        await hub.stop()
    assert refused.returncode == 1 and refused_out == b""
    lines = refused_err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: 0 of 2 chargers connected to ws://127.0.0.1:{ocpp_port}/ocpp: NOPE")
    assert "refused: HTTP 404" in lines[0]  # the gateway does not know these identities
    assert proc.returncode == 0, output.decode()
    stats = json.loads(output.decode()[output.decode().index("{") :])
    assert stats["sessions_completed"] == 2 and stats["errors"] == 0
    async with db.session() as s:
        ended = await s.scalar(
            select(func.count()).select_from(ChargingSession).where(ChargingSession.end_time.is_not(None))
        )
    assert ended == 2


def _refused(result, says: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0], lines[0]


def test_chargers_with_nothing_listening_fail_in_one_line() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ocpp"  # bound, then closed: nothing listens there
    result = CliRunner().invoke(app, ["simulate", "chargers", "--count", "5", "--url", url])
    _refused(result, f"0 of 5 chargers connected to {url}: connection refused")


def test_grid_feed_with_the_hub_unreachable_fails_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["simulate", "grid", "NL-NH", "--url", url, "--interval", "0"])
    _refused(result, f"cannot reach the hub at {url}: connection refused")


def test_simulators_refuse_unusable_options() -> None:
    runner = CliRunner()
    for args, says in [
        (["chargers", "--url", "http://127.0.0.1:9000/ocpp"], "expected a ws:// or wss:// URL"),
        (["chargers", "--url", "ws://127.0.0.1:99999/ocpp"], "port is not a number"),
        (["chargers", "--acceleration", "0"], "--acceleration 0"),
        (["chargers", "--sessions", "0"], "--sessions 0"),
        (["chargers", "--duration", "-1"], "--duration -1"),
        (["grid", "Z", "--url", "ws://127.0.0.1:8000"], "expected a http:// or https:// URL"),
        (["grid", "Z", "--samples", "0"], "--samples 0"),
    ]:
        _refused(runner.invoke(app, ["simulate", *args]), says)
