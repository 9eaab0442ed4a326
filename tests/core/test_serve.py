"""``evhub serve`` as a real process: it starts, answers /health, /metrics and /docs, and stops cleanly on SIGTERM;
what keeps it from starting (a port in use, an unreachable or unfit database, a bad setting) is one line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from kernel.db.engine import Database
from kernel.ports import free_port

EVHUB = str(Path(sys.executable).with_name("evhub"))


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=60.0) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"evhub serve exited early with {proc.returncode}")
            try:
                response = await client.get(f"{url}/health")
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("evhub serve did not become healthy")


async def test_serve_starts_answers_and_stops_on_sigterm(db: Database, tmp_path: Path) -> None:
    http_port, ocpp_port = free_port(), free_port()
    env = dict(
        os.environ,
        EVHUB_DATABASE_URL=db.url,
        EVHUB_HTTP_HOST="127.0.0.1",
        EVHUB_HTTP_PORT=str(http_port),
        EVHUB_OCPP_HOST="127.0.0.1",
        EVHUB_OCPP_PORT=str(ocpp_port),
        EVHUB_LOG_FORMAT="json",
        EVHUB_NODE_NAME="node-under-test",
        EVHUB_API_AUTH="true",
    )
    proc = await asyncio.create_subprocess_exec(
        EVHUB,
        "serve",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{http_port}"
        health = await _wait_healthy(url, proc)
        body = health.json()
        assert body["status"] == "ok" and body["database"] == "ok" and body["node"] == "node-under-test"
        async with httpx.AsyncClient(timeout=60.0) as client:
            metrics = await client.get(f"{url}/metrics")
            assert metrics.status_code == 200 and "evhub_http_requests_total" in metrics.text
            docs = await client.get(f"{url}/openapi.json")
            assert docs.status_code == 200 and "/health" in docs.json()["paths"]
            traced = await client.get(f"{url}/api/parties", headers={"X-Request-ID": "req-123"})
            assert traced.status_code == 401 and traced.headers["x-request-id"] == "req-123"  # no API key
        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, output.decode()
    text = output.decode()
    assert '"msg": "evhub started"' in text and '"msg": "evhub stopped"' in text


async def test_serve_refuses_an_unmigrated_database(empty_database_url: str, tmp_path: Path) -> None:
    """A database that was never migrated and may not be upgraded by serve: refused with a clear message."""
    env = dict(
        os.environ,
        EVHUB_DATABASE_URL=empty_database_url,
        EVHUB_HTTP_PORT=str(free_port()),
        EVHUB_OCPP_PORT=str(free_port()),
    )
    if empty_database_url.startswith("sqlite"):
        return  # the embedded SQLite default is upgraded by serve itself (covered by the demo)
    proc = await asyncio.create_subprocess_exec(
        EVHUB,
        "serve",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1
    assert "evhub db upgrade" in output.decode()


async def test_bad_setting_stops_serve_naming_the_variable(tmp_path: Path) -> None:
    env = dict(os.environ, EVHUB_HTTP_PORT="eighty")
    proc = await asyncio.create_subprocess_exec(
        EVHUB,
        "serve",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    assert "EVHUB_HTTP_PORT" in output.decode()


async def _serve_refused(env: dict[str, str], cwd: Path) -> str:
    """Run ``evhub serve`` to its end; it must exit non-zero with one ``error:`` line and no traceback."""
    proc = await asyncio.create_subprocess_exec(
        EVHUB, "serve", env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    output = stdout.decode() + stderr.decode()
    assert proc.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.mark.parametrize("taken", ["EVHUB_HTTP_PORT", "EVHUB_OCPP_PORT"])
async def test_serve_on_a_port_in_use_is_one_line_naming_the_port_and_variable(
    taken: str, db: Database, tmp_path: Path
) -> None:
    with socket.socket() as other:  # another process already listens there
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = dict(
            os.environ,
            EVHUB_DATABASE_URL=db.url,
            EVHUB_HTTP_HOST="127.0.0.1",
            EVHUB_OCPP_HOST="127.0.0.1",
            EVHUB_HTTP_PORT=str(free_port()),
            EVHUB_OCPP_PORT=str(free_port()),
        )
        env[taken] = str(port)
        line = await _serve_refused(env, tmp_path)
    assert f"port {port} ({taken}) is already in use" in line, line


async def test_serve_on_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = dict(
        os.environ,
        EVHUB_DATABASE_URL=f"postgresql+asyncpg://evhub:pw-s3cr3t@127.0.0.1:{port}/evhub",
        EVHUB_HTTP_PORT=str(free_port()),
        EVHUB_OCPP_PORT=str(free_port()),
    )
    line = await _serve_refused(env, tmp_path)
    assert "EVHUB_DATABASE_URL" in line and f"127.0.0.1:{port}" in line and "pw-s3cr3t" not in line


async def test_serve_refuses_a_database_from_a_newer_evhub(empty_database_url: str, tmp_path: Path) -> None:
    from kernel.db.migrate import upgrade

    db = Database(empty_database_url)
    try:
        await upgrade(db)
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'f00d_newer'"))
    finally:
        await db.dispose()
    env = dict(
        os.environ,
        EVHUB_DATABASE_URL=empty_database_url,
        EVHUB_AUTO_MIGRATE="true",  # even allowed to migrate, it must not touch a newer schema
        EVHUB_HTTP_PORT=str(free_port()),
        EVHUB_OCPP_PORT=str(free_port()),
    )
    line = await _serve_refused(env, tmp_path)
    assert "upgrade evhub to a version that knows revision f00d_newer" in line.lower(), line
