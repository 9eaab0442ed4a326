"""Benchmark (issue 15 item 1): a reconnect storm of chargers with distinct passwords against ``evhub serve``.

Run: ``flock /tmp/bench8.lock .venv/bin/python bench/bench_storm.py``. Environment:

* ``EVHUB_BENCH_DATABASE_URL`` — PostgreSQL for the hub (the schema is dropped and re-created!), default
  ``postgresql+asyncpg://postgres@127.0.0.1:5432/h_auth_bench`` (created when missing),
* ``EVHUB_BENCH_CHARGERS`` — chargers (default 10000), each with its own password and Argon2id hash,
* ``EVHUB_BENCH_GENERATORS`` — load generator processes (default 4),
* ``EVHUB_BENCH_HASH`` — ``cheap`` (Argon2id t=1, 8 MiB: seeding 10,000 hashes at the product's cost takes
  longer than the run) or ``product`` (the hub's own RFC 9106 cost).

Three phases, each timed from its start until every charger has been answered Accepted to a BootNotification:

1. *cold*: ``evhub serve`` has just started, no check is remembered: every charger costs one Argon2
   verification in the bounded pool; chargers refused with 503 wait the Retry-After (capped at 5 s) and retry;
2. *resume*: the chargers' connections are closed and all reconnect at once to the same process (its memory);
3. *restart*: ``evhub serve`` is killed (``kill -9``) and started again, and all reconnect: the checks come from
   the shared ``password_checks`` table (same ``EVHUB_PASSWORD_CACHE_KEY``), no Argon2.

For each phase: seconds until all booted, failed handshakes (anything but a 101 or a 503), 503s answered,
BootNotification latency p50/p99, the CPU seconds of the hub, of PostgreSQL and of the generators (orjson frames,
no compression). Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
EVHUB = str(Path(sys.executable).with_name("evhub"))
CACHE_KEY = "bench-storm-password-cache-key"
BOOT = {"chargePointVendor": "Bench", "chargePointModel": "Storm"}


def _password(i: int) -> str:
    return f"storm-{i}-pw-{i * 7919 % 100003}"


def _identity(i: int) -> str:
    return f"S{i:06d}"


def _hash_range(args: tuple[int, int, str]) -> list[str]:
    from argon2 import PasswordHasher

    lo, hi, kind = args
    hasher = (
        PasswordHasher()
        if kind == "product"
        else PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    )
    return [hasher.hash(_password(i)) for i in range(lo, hi)]


async def _prepare(url: str, n: int, kind: str) -> float:
    from sqlalchemy import insert, text

    import kernel.models  # noqa: F401
    from kernel.db.engine import Database
    from kernel.db.migrate import upgrade
    from kernel.models import ChargePoint, Party, PartyRole

    base, _, name = url.rpartition("/")
    admin = Database(f"{base}/postgres")
    async with admin.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        exists = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    db = Database(url)
    if os.environ.get("EVHUB_BENCH_REUSE"):  # the chargers of an earlier run: only its remembered checks go
        with contextlib.suppress(Exception):
            async with db.engine.begin() as conn:
                have = await conn.scalar(text("SELECT count(*) FROM charge_points"))
                if have == n:
                    await conn.execute(text("DELETE FROM password_checks"))
                    await conn.execute(
                        text("UPDATE charge_points SET status = 'offline', connected_node = NULL")
                    )
                    await db.dispose()
                    return 0.0
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade(db)
    started = time.monotonic()
    step = 250
    with mp.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
        chunks = pool.map(_hash_range, [(lo, min(n, lo + step), kind) for lo in range(0, n, step)])
    hashes = [h for chunk in chunks for h in chunk]
    seeded = time.monotonic() - started
    async with db.session() as s:
        party = Party(country_code="NL", party_id="STO", role=PartyRole.CPO, name="Storm CPO")
        s.add(party)
        await s.flush()
        rows = [
            {"identity": _identity(i), "password_hash": hashes[i], "ocpp_version": "1.6", "cpo_id": party.id}
            for i in range(n)
        ]
        for i in range(0, n, 1000):
            await s.execute(insert(ChargePoint), rows[i : i + 1000])
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    await db.dispose()
    return seeded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_hub(url: str, ocpp_port: int, http_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EVHUB_DATABASE_URL": url,
        "EVHUB_OCPP_HOST": "127.0.0.1",
        "EVHUB_OCPP_PORT": str(ocpp_port),
        "EVHUB_HTTP_HOST": "127.0.0.1",
        "EVHUB_HTTP_PORT": str(http_port),
        "EVHUB_PASSWORD_CACHE_KEY": CACHE_KEY,
        "EVHUB_OCPP_PING_INTERVAL": "0",
        "EVHUB_LOG_LEVEL": "WARNING",
        "EVHUB_AUTO_MIGRATE": "1",
        "EVHUB_HEARTBEAT_INTERVAL": "3600",
    }
    profile = os.environ.get("EVHUB_BENCH_PROFILE")  # cProfile output of the hub (written when it stops)
    cmd = [sys.executable, "-m", "cProfile", "-o", profile, EVHUB, "serve"] if profile else [EVHUB, "serve"]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", ocpp_port), timeout=1):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"evhub serve exited with {proc.returncode}; see {log}")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("evhub serve did not open its OCPP port")


def _echo_server(port: int, ready: Any) -> None:
    """The baseline: a bare websockets + orjson server that accepts every upgrade and answers each
    BootNotification Accepted (no auth, no database): the transport's limit on this machine."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def main() -> None:
        from websockets.asyncio.server import serve

        async def handle(ws: Any) -> None:
            async for frame in ws:
                call = orjson.loads(frame)
                await ws.send(orjson.dumps([3, call[1], {"status": "Accepted", "interval": 3600}]).decode())

        async with serve(handle, "127.0.0.1", port, compression=None, ping_interval=None,
                         select_subprotocol=lambda _c, offered: "ocpp1.6"):  # fmt: skip
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


# -- generator processes ----------------------------------------------------------------------------------------


def _generator(ids: list[int], port: int, commands: Any, results: Any) -> None:  # port: the hub's
    """One load generator process: on each command ("connect" or "stop") all its chargers (re)connect and boot."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_generate(ids, port, commands, results))


async def _generate(ids: list[int], port: int, commands: Any, results: Any) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    sockets: dict[int, Any] = {}
    loop = asyncio.get_running_loop()

    async def one(i: int, stats: dict[str, Any], port: int) -> None:
        identity = _identity(i)
        auth = base64.b64encode(f"{identity}:{_password(i)}".encode()).decode()
        while True:
            try:
                ws = await connect(
                    f"ws://127.0.0.1:{port}/ocpp/{identity}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                    additional_headers={"Authorization": f"Basic {auth}"}, ping_interval=None,
                    open_timeout=60, compression=None, max_queue=None,
                )  # fmt: skip
            except InvalidStatus as exc:
                if exc.response.status_code == 503:
                    stats["busy"] += 1
                    wait = min(5.0, float(exc.response.headers.get("Retry-After", "1")))
                    await asyncio.sleep(wait)
                    continue
                stats["failed"] += 1
                return
            except (
                OSError,
                TimeoutError,
                InvalidHandshake,
            ):  # no HTTP answer: failed, retried as a charger would
                stats["failed"] += 1
                await asyncio.sleep(1 + random.random() * 4)
                continue
            break
        sent = time.monotonic()
        try:
            await ws.send(orjson.dumps([2, "b1", "BootNotification", BOOT]).decode())
            answer = orjson.loads(await ws.recv())
        except Exception:  # closed by the hub (1011) or anything else: a failed charger
            stats["failed"] += 1
            return
        stats["boot_ms"].append((time.monotonic() - sent) * 1000)
        if answer[0] == 3 and answer[2].get("status") == "Accepted":
            stats["booted"] += 1
            sockets[i] = ws
        else:
            stats["failed"] += 1

    while True:
        command = await loop.run_in_executor(None, commands.get)
        if command == "close":
            await asyncio.gather(*(ws.close() for ws in sockets.values()), return_exceptions=True)
            sockets.clear()
            results.put({"closed": True})
            continue
        if command == "forget":  # the hub was killed: the sockets are dead
            for ws in sockets.values():
                ws.transport.abort()
            sockets.clear()
            results.put({"closed": True})
            continue
        if command == "stop":
            return
        target = port
        if isinstance(command, tuple):  # ("connect", port): another server (the echo baseline)
            target = command[1]
        stats: dict[str, Any] = {"booted": 0, "failed": 0, "busy": 0, "boot_ms": []}
        cpu0 = time.process_time()
        started = time.monotonic()
        await asyncio.gather(*(one(i, stats, target) for i in ids), return_exceptions=False)
        stats["seconds"] = time.monotonic() - started
        stats["cpu"] = time.process_time() - cpu0
        results.put(stats)


def _cpu(pid: int) -> float:
    import psutil

    with contextlib.suppress(psutil.Error):
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    return 0.0


def _pg_cpu() -> float:
    import psutil

    total = 0.0
    for p in psutil.process_iter(["name"]):
        if (p.info["name"] or "").startswith("postgres"):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    return total


def main() -> None:
    url = os.environ.get(
        "EVHUB_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/h_auth_bench"
    )
    n = int(os.environ.get("EVHUB_BENCH_CHARGERS", "10000"))
    gens = int(os.environ.get("EVHUB_BENCH_GENERATORS", "4"))
    kind = os.environ.get("EVHUB_BENCH_HASH", "cheap")
    seeded = asyncio.run(_prepare(url, n, kind))
    print(f"seeded {n} chargers with distinct passwords ({kind} Argon2id) in {seeded:.1f} s")
    ocpp_port, http_port = _free_port(), _free_port()
    log = Path(os.environ.get("EVHUB_BENCH_LOG", "/tmp/bench_storm_hub.log"))
    log.write_bytes(b"")
    hub = _start_hub(url, ocpp_port, http_port, log)
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    queues = [ctx.Queue() for _ in range(gens)]
    procs = [
        ctx.Process(
            target=_generator, args=(list(range(g, n, gens)), ocpp_port, queues[g], results), daemon=True
        )
        for g in range(gens)
    ]
    for p in procs:
        p.start()

    def phase(name: str, command: Any = "connect", server_pid: int | None = None) -> None:
        pid = server_pid if server_pid is not None else hub.pid
        hub_cpu, pg_cpu = _cpu(pid), _pg_cpu()
        started = time.monotonic()
        for q in queues:
            q.put(command)
        parts = [results.get(timeout=900) for _ in range(gens)]
        wall = time.monotonic() - started
        boots = sorted(ms for part in parts for ms in part["boot_ms"])
        p99 = boots[int(len(boots) * 0.99) - 1] if boots else float("nan")
        print(
            f"{name:8s} all booted in {max(p['seconds'] for p in parts):6.2f} s (wall {wall:.2f}); "
            f"booted {sum(p['booted'] for p in parts)}/{n}, failed {sum(p['failed'] for p in parts)}, "
            f"503s {sum(p['busy'] for p in parts)}; boot p50 {statistics.median(boots) if boots else 0:.1f} ms "
            f"p99 {p99:.1f} ms; CPU s: server {_cpu(pid) - hub_cpu:.1f}, postgres {_pg_cpu() - pg_cpu:.1f}, "
            f"generators {sum(p['cpu'] for p in parts):.1f}",
            flush=True,
        )

    def each(command: str) -> None:
        for q in queues:
            q.put(command)
        for _ in range(gens):
            results.get(timeout=300)

    echo_port = _free_port()
    echo_ready = ctx.Event()
    echo = ctx.Process(target=_echo_server, args=(echo_port, echo_ready), daemon=True)
    echo.start()
    echo_ready.wait(60)
    print(f"load average before: {os.getloadavg()}", flush=True)
    try:
        phase("echo", ("connect", echo_port), echo.pid)
        each("close")
        echo.kill()
        time.sleep(1)
        phase("cold")
        each("close")
        time.sleep(1)  # let the hub see the closes
        phase("resume")
        hub.send_signal(signal.SIGKILL)
        hub.wait()
        each("forget")
        hub = _start_hub(url, ocpp_port, http_port, log)
        phase("restart")
        print(f"load average after: {os.getloadavg()}", flush=True)
    finally:
        for q in queues:
            q.put("stop")
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        hub.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            hub.wait(30)
        if hub.poll() is None:
            hub.kill()


if __name__ == "__main__":
    main()
