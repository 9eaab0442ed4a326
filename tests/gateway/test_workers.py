"""``EVHUB_OCPP_WORKERS``: one ``evhub serve`` with extra OCPP worker processes on the same port (PostgreSQL).

Chargers spread over the processes, each charger's messages are stored wherever it landed, API commands reach
chargers held by a worker, a killed worker is started again, and SIGTERM stops every process cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from kernel.db.engine import Database
from kernel.models import EVSE, ChargePoint, ChargePointEvse, ChargingSession, OcppVersion, RegistrationStatus
from kernel.security import hash_password
from kernel.settings import SettingsError, load_settings
from tests.conftest import free_port
from tests.gateway.conftest import EVHUB, PASSWORD, T0, Client, Seed, basic

CHARGERS = 16
PATIENCE = 90.0
"""Seconds any one step may take (the processes starting, chargers connecting, a command's answer, a restart, a
stop): an upper bound for a loaded CI box, where spawning a worker process alone can take many seconds; never
a wait, each step ends as soon as its condition holds."""


async def _add_chargers(db: Database, seeded: Seed) -> list[str]:
    pw = hash_password(PASSWORD)
    names = [f"WK{i:02d}" for i in range(CHARGERS)]
    async with db.session() as db_session:
        for name in names:
            cp = ChargePoint(identity=name, password_hash=pw, ocpp_version=OcppVersion.V16,
                             cpo_id=seeded.cpo_id, location_id=seeded.location_id,
                             registration_status=RegistrationStatus.ACCEPTED)  # fmt: skip
            db_session.add(cp)
            await db_session.flush()
            evse = EVSE(
                location_id=seeded.location_id, uid=f"E-{name}", evse_id=f"NL*ABC*E{name}", last_updated=T0
            )
            db_session.add(evse)
            await db_session.flush()
            db_session.add(ChargePointEvse(charge_point_id=cp.id, ocpp_evse_id=1, evse_pk=evse.id))
    return names


class PatientClient(Client):
    """A :class:`Client` that waits up to :data:`PATIENCE` for each answer (the shared one waits 10 s)."""

    async def raw(self, text: str, uid: str) -> list[Any]:
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.answers[uid] = fut
        await self.ws.send(text)
        return await asyncio.wait_for(fut, PATIENCE)


async def _connect(port: int, identity: str) -> Client:
    ws = await connect(f"ws://127.0.0.1:{port}/ocpp/{identity}", subprotocols=["ocpp1.6"],
                       additional_headers=basic(identity, PASSWORD), open_timeout=PATIENCE)  # fmt: skip
    return PatientClient(ws)


async def _connect_until_admitted(port: int, identity: str) -> Client:
    """``identity`` connected, coming back (as a charger does) while the process it landed on is still binding
    (refused connection) or answers 503 (busy admitting); any other refusal (401, 404) fails at once."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return await _connect(port, identity)
        except InvalidStatus as exc:
            if exc.response.status_code != 503:
                raise
            last: BaseException = exc
        except OSError as exc:
            last = exc
        assert time.monotonic() < deadline, f"{identity} not admitted within {PATIENCE} s: {last!r}"
        await asyncio.sleep(0.1)  # the next attempt (polling)


def _listening(proc: psutil.Process, port: int) -> bool:
    """True once ``proc`` has its listening socket on ``port`` (only then does the kernel hand it chargers)."""
    try:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in proc.net_connections(kind="tcp")
        )
    except psutil.Error:
        return False


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process it started (a test that fails must not leave workers behind)."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


async def _nodes(db: Database, names: list[str]) -> dict[str, str | None]:
    async with db.session() as db_session:
        rows = await db_session.execute(
            select(ChargePoint.identity, ChargePoint.connected_node).where(ChargePoint.identity.in_(names))
        )
        return dict(rows.all())


def test_more_than_one_worker_needs_postgresql() -> None:
    with pytest.raises(SettingsError, match=r"EVHUB_OCPP_WORKERS=2.*PostgreSQL"):
        load_settings(database_url="sqlite+aiosqlite:///x.db", ocpp_workers=2)
    assert load_settings(database_url="postgresql+asyncpg://u@h/db", ocpp_workers=2).ocpp_workers == 2


async def test_workers_share_the_port_and_work_as_one(db: Database, seeded: Seed, tmp_path: Path) -> None:
    if db.is_sqlite:
        pytest.skip("OCPP workers need PostgreSQL")
    names = await _add_chargers(db, seeded)
    http_port, ocpp_port = free_port(), free_port()
    env = dict(os.environ, EVHUB_DATABASE_URL=db.url, EVHUB_HTTP_HOST="127.0.0.1", EVHUB_HTTP_PORT=str(http_port),
               EVHUB_OCPP_HOST="127.0.0.1", EVHUB_OCPP_PORT=str(ocpp_port), EVHUB_NODE_NAME="main",
               EVHUB_OCPP_WORKERS="2", EVHUB_OCPP_COMMAND_TIMEOUT=str(PATIENCE))  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        EVHUB,
        "serve",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    chargers: list[Client] = []
    try:
        deadline = time.monotonic() + PATIENCE
        workers: list[psutil.Process] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=PATIENCE) as api:
            while not workers:  # the HTTP app answers, and the worker process listens on the OCPP port
                assert proc.returncode is None, (await proc.stderr.read()).decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "evhub serve with 2 OCPP workers did not start"
                try:
                    if (await api.get("/health")).status_code == 200:
                        workers = [c for c in psutil.Process(proc.pid).children() if _listening(c, ocpp_port)]
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            # connect until the kernel has spread chargers over both processes (it hashes each connection)
            for name in names:
                chargers.append(await _connect_until_admitted(ocpp_port, name))
            deadline = time.monotonic() + PATIENCE
            while not all((nodes := await _nodes(db, names)).values()):  # each marked online where it landed
                assert time.monotonic() < deadline, f"chargers not marked online within {PATIENCE} s: {nodes}"
                await asyncio.sleep(0.1)
            assert set(nodes.values()) == {"main", "main/ocpp-1"}, nodes

            # every charger's session and meter values are stored, whichever process holds it
            for i, charger in enumerate(chargers):
                started = await charger.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01",
                                                                "meterStart": 0, "timestamp": "2026-11-02T10:00:00Z"})  # fmt: skip
                await charger.ok("MeterValues", {"connectorId": 1, "transactionId": started["transactionId"],
                                                 "meterValue": [{"timestamp": "2026-11-02T10:01:00Z",
                                                                 "sampledValue": [{"value": str(100 + i)}]}]})  # fmt: skip
            async with db.session() as db_session:
                count = len((await db_session.scalars(select(ChargingSession.id).where(
                    ChargingSession.charge_point_id.in_(select(ChargePoint.id).where(ChargePoint.identity.in_(names)))
                ))).all())  # fmt: skip
            assert count == CHARGERS

            # a command sent to the main process reaches a charger held by the worker
            on_worker = next(n for n, node in nodes.items() if node == "main/ocpp-1")
            target = chargers[names.index(on_worker)]
            target.auto_reply["Reset"] = {"status": "Accepted"}
            r = await api.post(f"/api/chargers/{on_worker}/commands/reset", json={"type": "Soft"})
            assert r.status_code == 200, r.text
            assert r.json()["response"] == {"status": "Accepted"}

            # a worker that dies is started again, and its chargers can reconnect
            old_pid = workers[0].pid
            os.kill(old_pid, signal.SIGKILL)
            deadline = time.monotonic() + PATIENCE
            while True:
                # the restarted worker is the new child listening on the port (not multiprocessing's tracker)
                fresh = [
                    p.pid
                    for p in psutil.Process(proc.pid).children()
                    if p.pid != old_pid and _listening(p, ocpp_port)
                ]
                if fresh:
                    break
                assert time.monotonic() < deadline, "the killed worker was not started again"
                await asyncio.sleep(0.2)

        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), PATIENCE)
        assert proc.returncode == 0
        assert not psutil.pid_exists(fresh[0]) or psutil.Process(fresh[0]).status() == psutil.STATUS_ZOMBIE
    finally:
        for charger in chargers:
            await charger.close()
        if proc.returncode is None:
            _kill_tree(proc.pid)
            await proc.wait()


async def test_a_worker_stops_when_its_main_process_is_killed(db: Database, tmp_path: Path) -> None:
    """SIGKILL of the main process must not leave a worker holding the OCPP port for nobody."""
    if db.is_sqlite:
        pytest.skip("OCPP workers need PostgreSQL")
    http_port, ocpp_port = free_port(), free_port()
    env = dict(os.environ, EVHUB_DATABASE_URL=db.url, EVHUB_HTTP_HOST="127.0.0.1", EVHUB_HTTP_PORT=str(http_port),
               EVHUB_OCPP_HOST="127.0.0.1", EVHUB_OCPP_PORT=str(ocpp_port), EVHUB_OCPP_WORKERS="2")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        EVHUB, "serve", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + PATIENCE
        workers: list[psutil.Process] = []
        while not workers:
            assert proc.returncode is None and time.monotonic() < deadline, (
                "evhub serve did not start its worker"
            )
            workers = [c for c in psutil.Process(proc.pid).children() if _listening(c, ocpp_port)]
            await asyncio.sleep(0.2)
        proc.kill()
        await proc.wait()
        _gone, alive = await asyncio.to_thread(psutil.wait_procs, workers, PATIENCE)
        assert not alive, "an OCPP worker outlived its killed main process"
    finally:
        if proc.returncode is None:
            _kill_tree(proc.pid)
            await proc.wait()
