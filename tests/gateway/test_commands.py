"""Remote commands through the REST API (/api/chargers) to real websocket clients, in one process and across
two ``evhub serve`` processes sharing PostgreSQL (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cpo_gateway.server import Gateway
from kernel.components import Hub
from kernel.db.engine import Database
from tests.conftest import free_port
from tests.gateway.conftest import (
    EVHUB,
    PASSWORD,
    Seed,
    api_client,
    basic,
    command_hub,
    open_client,
)


@pytest.fixture
async def hub(db: Database, seeded: Seed, database_url: str) -> AsyncIterator[Hub]:
    async with command_hub(database_url, db, command_timeout=1) as running:
        yield running


async def test_commands_v16_and_v201(hub: Hub) -> None:
    gw = hub.services.gateway
    assert isinstance(gw, Gateway)
    c16 = await open_client(gw, "CP16", "ocpp1.6")
    c201 = await open_client(gw, "CP201", "ocpp2.0.1")
    c16.auto_reply.update(RemoteStartTransaction={"status": "Accepted"},
                          GetConfiguration={"configurationKey": [{"key": "HeartbeatInterval", "readonly": False,
                                                                  "value": "60"}]})  # fmt: skip
    c201.auto_reply.update(RequestStartTransaction={"status": "Accepted"}, ClearCache={"status": "Rejected"})
    for c in (c16, c201):  # a first answer means the connection is registered
        await c.ok("Heartbeat", {})
    async with api_client(hub) as api:
        listing = (await api.get("/api/chargers")).json()
        state = {c["identity"]: c["connected"] for c in listing}
        assert state == {"CP16": True, "CP201": True, "CPPEND": False}
        r = await api.post(
            "/api/chargers/CP16/commands/remote-start", json={"id_tag": "AABBCC01", "evse_id": 1}
        )
        assert r.status_code == 200, r.text
        assert r.json()["action"] == "RemoteStartTransaction" and r.json()["response"] == {
            "status": "Accepted"
        }
        sent = await asyncio.wait_for(c16.incoming.get(), 2)
        assert sent[2] == "RemoteStartTransaction" and sent[3] == {"idTag": "AABBCC01", "connectorId": 1}
        r = await api.post(
            "/api/chargers/CP201/commands/remote-start", json={"id_tag": "AABBCC01", "evse_id": 1}
        )
        assert r.status_code == 200 and r.json()["action"] == "RequestStartTransaction"
        r = await api.post(
            "/api/chargers/CP16/commands/get-configuration", json={"keys": ["HeartbeatInterval"]}
        )
        assert r.json()["response"]["configurationKey"][0]["value"] == "60"
        r = await api.post("/api/chargers/CP201/commands/clear-cache")
        assert r.status_code == 200 and r.json()["response"] == {"status": "Rejected"}
        # no answer in time -> 504 with a clear body
        r = await api.post("/api/chargers/CP16/commands/unlock-connector", json={"evse_id": 1})
        assert r.status_code == 504 and "did not answer" in r.json()["detail"]["error"]
        # offline -> 409, unknown -> 404, bad params -> 422
        assert (await api.post("/api/chargers/CPPEND/commands/reset", json={})).status_code == 409
        assert (await api.post("/api/chargers/NOPE/commands/reset", json={})).status_code == 404
        assert (await api.post("/api/chargers/CP16/commands/remote-stop", json={})).status_code == 422
        assert (await api.post("/api/chargers/CP16/call/Reset", json={"type": "Sideways"})).status_code == 422
        # CALLERROR from the charger -> 502
        task = asyncio.create_task(api.post("/api/chargers/CP16/commands/reset", json={"type": "Hard"}))
        while True:
            msg = await asyncio.wait_for(c16.incoming.get(), 2)
            if msg[2] == "Reset":
                break
        await c16.ws.send(f'[4,"{msg[1]}","NotSupported","no resets today",{{}}]')
        r = await task
        assert r.status_code == 502 and r.json()["detail"]["code"] == "NotSupported"
    await c16.close()
    await c201.close()


async def _start_serve(db_url: str, node: str, tmp: Path) -> tuple[asyncio.subprocess.Process, int, int]:
    http_port, ocpp_port = free_port(), free_port()
    env = dict(os.environ, EVHUB_DATABASE_URL=db_url, EVHUB_HTTP_HOST="127.0.0.1", EVHUB_HTTP_PORT=str(http_port),
               EVHUB_OCPP_HOST="127.0.0.1", EVHUB_OCPP_PORT=str(ocpp_port), EVHUB_NODE_NAME=node,
               EVHUB_OCPP_COMMAND_TIMEOUT="3")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        EVHUB, "serve", env=env, cwd=tmp, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    deadline = time.monotonic() + 40
    async with httpx.AsyncClient(timeout=60.0) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                err = await proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"evhub serve {node} exited: {err.decode()[-2000:]}")
            try:
                if (await client.get(f"http://127.0.0.1:{http_port}/health")).status_code == 200:
                    return proc, http_port, ocpp_port
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    proc.kill()
    raise AssertionError(f"evhub serve {node} did not start")


async def test_commands_across_two_processes(db: Database, seeded: Seed, tmp_path: Path) -> None:
    if db.is_sqlite:
        pytest.skip("cluster mode needs PostgreSQL (LISTEN/NOTIFY)")
    from websockets.asyncio.client import connect

    from tests.gateway.conftest import Client

    procs = []
    try:
        a, http_a, _ocpp_a = await _start_serve(db.url, "node-a", tmp_path)
        procs.append(a)
        b, _http_b, ocpp_b = await _start_serve(db.url, "node-b", tmp_path)
        procs.append(b)
        ws = await connect(f"ws://127.0.0.1:{ocpp_b}/ocpp/CP201", subprotocols=["ocpp2.0.1"],
                           additional_headers=basic("CP201", PASSWORD))  # fmt: skip
        charger = Client(ws)
        charger.auto_reply["RequestStartTransaction"] = {"status": "Accepted", "transactionId": "T-9"}
        await charger.ok(
            "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_a}", timeout=15) as api:
            listing = {c["identity"]: c for c in (await api.get("/api/chargers")).json()}
            assert listing["CP201"]["connected"] and listing["CP201"]["connected_node"] == "node-b"
            # sent to process A, the charger is on process B
            r = await api.post("/api/chargers/CP201/commands/remote-start", json={"id_tag": "AABBCC01"})
            assert r.status_code == 200, r.text
            assert r.json()["response"] == {"status": "Accepted", "transactionId": "T-9"}
            # B's charger does not answer this one -> 504 through A
            r = await api.post("/api/chargers/CP201/commands/reset", json={"type": "Soft"})
            assert r.status_code == 504, r.text
            # offline everywhere -> 409
            assert (await api.post("/api/chargers/CP16/commands/reset", json={})).status_code == 409
        await charger.close()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
