"""Benchmark: the OCPP gateway's throughput and capacity, against two baselines measured in the same run.

Run: ``.venv/bin/python bench/bench_gateway.py`` (or ``python -m bench gateway``). Environment:

* ``EVHUB_BENCH_DATABASE_URL`` — database for the gateway (default: a temporary SQLite file; set a
  ``postgresql+asyncpg://`` URL for the production set-up; the schema is dropped and re-created!),
* ``EVHUB_BENCH_CHARGERS`` — chargers for the capacity run (default 2000),
* ``EVHUB_BENCH_SECONDS`` — length of each flat-out run (default 10),
* ``EVHUB_BENCH_ROUNDS`` — flat-out rounds, the three servers taking turns; medians are reported (default 3),
* ``EVHUB_BENCH_FLAT_CONNECTIONS`` — concurrent chargers in the flat-out runs (default ``50,500``; empty: none),
* ``EVHUB_BENCH_MINUTES`` — length of the capacity run (default 2),
* ``EVHUB_BENCH_PROCESSES`` — processes per server (default 1; more needs PostgreSQL for the gateway: on a
  2-core machine the load generator and PostgreSQL need the other core, so 1 is the faster setting there).

Every server runs in processes of its own (uvloop when installed), the same number for all three, sharing
one port with SO_REUSEPORT — for the gateway that is ``EVHUB_OCPP_WORKERS``. The load generator runs in this
process with pre-built frames and connects without permessage-deflate (as chargers do), so all three servers
handle the same uncompressed frames. Each flat-out line also gives the CPU time per message of the server
processes, the load generator and PostgreSQL (all processes named ``postgres``). Prints figures; asserts nothing about timing.

1. Flat-out: each connection sends OCPP 1.6 MeterValues for a running transaction back to back (next frame
   after the answer) for N seconds, against
   a. a bare ``websockets`` JSON echo server (parse, answer ``[3, id, {}]``) — the ceiling of the transport,
   b. the ``ocpp`` library's own central system (``ocpp.v16.ChargePoint`` + ``@on``), no persistence,
   c. the evhub gateway: schema validation, translation, and every sample committed to the database before
      the answer (group commit across chargers).
2. Capacity: ``EVHUB_BENCH_CHARGERS`` chargers connect and each sends one MeterValues per minute (random
   phase) for two minutes; reports p50/p99 latency and the gateway's memory per connection.

Chargers are seeded with a cheap Argon2 hash so that connecting thousands of them measures the gateway, not
the password hash; the real cost of one Argon2 check is reported separately.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kernel.ports import free_port

PASSWORD = "bench-password"


def _use_uvloop() -> str:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:  # pragma: no cover
        return "asyncio"


# -- servers (each in its own process) ------------------------------------------------------------------------


def serve_echo(port: int, ready: Any, processes: int) -> None:
    _use_uvloop()
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            await ws.send(json.dumps([3, msg[1], {}], separators=(",", ":")))

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"], ping_interval=None,
                         compression=None, reuse_port=True):  # fmt: skip
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


def serve_ocpp_library(port: int, ready: Any, processes: int) -> None:
    """The ocpp library's plain central system, written with its public API only, storing nothing."""
    _use_uvloop()
    import logging

    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
    from websockets.asyncio.server import serve

    logging.getLogger("ocpp").setLevel(logging.WARNING)
    counter = iter(range(1, 10**9))

    class CentralSystemChargePoint(ChargePoint):
        @on(Action.boot_notification)
        def on_boot(self, **kwargs: Any) -> Any:
            now = datetime.now(UTC).isoformat()
            return call_result.BootNotification(
                current_time=now, interval=300, status=RegistrationStatus.accepted
            )

        @on(Action.start_transaction)
        def on_start(self, **kwargs: Any) -> Any:
            return call_result.StartTransaction(
                transaction_id=next(counter), id_tag_info={"status": AuthorizationStatus.accepted}
            )

        @on(Action.meter_values)
        def on_meter_values(self, **kwargs: Any) -> Any:
            return call_result.MeterValues()

    async def handler(ws: Any) -> None:
        cp = CentralSystemChargePoint(ws.request.path.rsplit("/", 1)[-1], ws)
        with contextlib.suppress(Exception):
            await cp.start()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"], ping_interval=None,
                         compression=None, reuse_port=True):  # fmt: skip
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


def serve_gateway(port: int, db_url: str, ready: Any, processes: int) -> None:
    _use_uvloop()
    import logging

    logging.basicConfig(level=logging.WARNING)
    from cpo_gateway.server import Gateway
    from evhub.gcpolicy import GcPolicy
    from kernel.db.engine import Database
    from kernel.settings import Settings

    async def main() -> None:
        settings = Settings(
            database_url=db_url, ocpp_host="127.0.0.1", ocpp_port=port, ocpp_rate_limit=100000,
            ocpp_rate_burst=100000, ocpp_ping_interval=0, ocpp_workers=processes,
        )  # fmt: skip
        db = Database(db_url, pool_size=5)
        gw = Gateway(settings, db, f"bench-{os.getpid()}")
        await gw.start()
        GcPolicy().start()  # as evhub serve does
        profile_to = os.environ.get("EVHUB_BENCH_PROFILE")
        if profile_to:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
            asyncio.get_running_loop().call_later(8, lambda: (prof.disable(), prof.dump_stats(profile_to)))
        ready.set()
        await asyncio.Future()

    asyncio.run(main())


def _start(target: Any, *args: Any, processes: int = 1) -> tuple[list[mp.Process], int]:
    """``processes`` copies of one server, all listening on one port (SO_REUSEPORT, as ``EVHUB_OCPP_WORKERS``
    does for the gateway)."""
    port = free_port()
    ctx = mp.get_context("spawn")
    procs = []
    for _ in range(processes):
        ready = ctx.Event()
        proc = ctx.Process(target=target, args=(port, *args, ready, processes), daemon=True)
        proc.start()
        procs.append(proc)
        if not ready.wait(60):
            _stop(procs)
            raise RuntimeError(f"{target.__name__} did not start")
    return procs, port


def _stop(procs: list[mp.Process]) -> None:
    for proc in procs:
        proc.kill()
        proc.join()


def _rss_mb(pids: list[int]) -> float:
    import psutil

    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 2**20


def _cpu_seconds(server_pids: list[int]) -> dict[str, float]:
    """CPU time so far of the server processes, this (load generator) process and all PostgreSQL processes."""
    import psutil

    def used(p: Any) -> float:
        t = p.cpu_times()
        return t.user + t.system

    pg = 0.0
    for p in psutil.process_iter(["name"]):
        if (p.info["name"] or "").startswith("postgres"):
            with contextlib.suppress(psutil.Error):
                pg += used(p)
    server = sum(used(psutil.Process(pid)) for pid in server_pids)
    return {"server": server, "client": used(psutil.Process()), "postgres": pg}


# -- database -------------------------------------------------------------------------------------------------


async def _prepare_db(url: str, n_chargers: int) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import insert, text

    import kernel.models  # noqa: F401
    from kernel.db.engine import Database
    from kernel.db.migrate import upgrade
    from kernel.models import ChargePoint, Party, PartyRole

    db = Database(url)
    if not db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await upgrade(db)
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    async with db.session() as s:
        party = Party(country_code="NL", party_id="BEN", role=PartyRole.CPO, name="Bench CPO")
        s.add(party)
        await s.flush()
        rows = [
            {"identity": f"B{i:06d}", "password_hash": cheap, "ocpp_version": "1.6", "cpo_id": party.id}
            for i in range(n_chargers)
        ]
        for i in range(0, len(rows), 1000):
            await s.execute(insert(ChargePoint), rows[i : i + 1000])
    if not db.is_sqlite:  # measure the steady state, not the aftermath of re-creating the schema
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
            await conn.execute(text("CHECKPOINT"))
    await db.dispose()


# -- load generator -------------------------------------------------------------------------------------------


def _headers(identity: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{identity}:{PASSWORD}".encode()).decode()}


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _meter_frame(uid: str, tx: int, n: int) -> str:
    ts = (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    return (
        f'[2,"{uid}","MeterValues",{{"connectorId":1,"transactionId":{tx},"meterValue":[{{"timestamp":"{ts}",'
        f'"sampledValue":[{{"value":"{1000 + n}","context":"Sample.Periodic",'
        f'"measurand":"Energy.Active.Import.Register","unit":"Wh"}}]}}]}}]'
    )


async def _open(port: int, identity: str) -> tuple[Any, int]:
    from websockets.asyncio.client import connect

    ws = await connect(
        f"ws://127.0.0.1:{port}/ocpp/{identity}", subprotocols=["ocpp1.6"], additional_headers=_headers(identity),
        ping_interval=None, open_timeout=120, max_queue=None, compression=None,
    )  # fmt: skip
    start = json.dumps([2, "s", "StartTransaction", {"connectorId": 1, "idTag": "BENCH", "meterStart": 1000,
                                                     "timestamp": "2026-01-01T00:00:00Z"}])  # fmt: skip
    await ws.send(start)
    answer = json.loads(await ws.recv())
    tx = answer[2].get("transactionId", 1) if answer[0] == 3 else 1
    return ws, int(tx)


async def flat_out(port: int, connections: int, seconds: float, pids: list[int]) -> dict[str, float]:
    links = await asyncio.gather(*(_open(port, f"B{i:06d}") for i in range(connections)))
    cpu0 = _cpu_seconds(pids)
    count = 0
    lat: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def drive(ws: Any, tx: int, k: int) -> None:
        nonlocal count
        n = k * 10_000_000
        while time.perf_counter() < stop_at:
            n += 1
            t = time.perf_counter()
            await ws.send(_meter_frame(str(n), tx, n))
            await ws.recv()
            lat.append(time.perf_counter() - t)
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(drive(ws, tx, k) for k, (ws, tx) in enumerate(links)))
    elapsed = time.perf_counter() - t0
    cpu1 = _cpu_seconds(pids)
    await asyncio.gather(*(ws.close() for ws, _ in links))
    lat.sort()
    return {
        **{f"{k}_us": (cpu1[k] - cpu0[k]) / count * 1e6 for k in cpu0},
        "msgs_per_s": count / elapsed,
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
    }


async def capacity(port: int, n: int, minutes: float, pids: list[int]) -> dict[str, float]:
    base_rss = _rss_mb(pids)
    links: list[tuple[Any, int]] = []
    t0 = time.perf_counter()
    for i in range(0, n, 200):
        links += await asyncio.gather(*(_open(port, f"B{j:06d}") for j in range(i, min(n, i + 200))))
    connect_s = time.perf_counter() - t0
    await asyncio.sleep(2)
    rss = _rss_mb(pids)
    lat: list[float] = []
    period = 60.0
    end = time.perf_counter() + minutes * 60

    async def drive(ws: Any, tx: int, k: int) -> None:
        await asyncio.sleep(random.uniform(0, period))
        m = k * 10_000_000
        while time.perf_counter() < end:
            m += 1
            t = time.perf_counter()
            await ws.send(_meter_frame(str(m), tx, m))
            await ws.recv()
            lat.append(time.perf_counter() - t)
            await asyncio.sleep(period - (time.perf_counter() - t))

    await asyncio.gather(*(drive(ws, tx, k) for k, (ws, tx) in enumerate(links)))
    rss_end = _rss_mb(pids)
    for i in range(0, len(links), 500):
        await asyncio.gather(*(ws.close() for ws, _ in links[i : i + 500]))
    lat.sort()
    return {
        "chargers": n,
        "connect_s": connect_s,
        "messages": len(lat),
        "p50_ms": statistics.median(lat) * 1000 if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan"),
        "max_ms": lat[-1] * 1000 if lat else float("nan"),
        "rss_base_mb": base_rss,
        "rss_connected_mb": rss,
        "rss_end_mb": rss_end,
        "kb_per_connection": (rss - base_rss) * 1024 / n,
    }


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput (its latencies and CPU figures belong to it)."""
    return sorted(runs, key=lambda r: r["msgs_per_s"])[len(runs) // 2]


def argon2_check_ms() -> float:
    from kernel.security import hash_password, verify_password

    h = hash_password("x" * 16)
    t = time.perf_counter()
    for _ in range(5):
        verify_password(h, "x" * 16)
    return (time.perf_counter() - t) / 5 * 1000


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    loop_name = _use_uvloop()
    seconds = float(os.environ.get("EVHUB_BENCH_SECONDS", "10"))
    levels = [
        int(x) for x in os.environ.get("EVHUB_BENCH_FLAT_CONNECTIONS", "50,500").split(",") if x.strip()
    ]
    n_chargers = int(os.environ.get("EVHUB_BENCH_CHARGERS", "2000"))
    minutes = float(os.environ.get("EVHUB_BENCH_MINUTES", "2"))
    tmp = tempfile.mkdtemp(prefix="evhub-bench-")
    db_url = os.environ.get("EVHUB_BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp}/bench.db"
    processes = int(os.environ.get("EVHUB_BENCH_PROCESSES", "1"))
    rounds = int(os.environ.get("EVHUB_BENCH_ROUNDS", "3"))
    print(
        f"loop={loop_name} cpus={os.cpu_count()} database={db_url.split('://')[0]} flat-out {levels} conns x "
        f"{seconds}s, {processes} process(es) per server"
    )
    asyncio.run(_prepare_db(db_url, max([n_chargers, *levels])))
    print(
        f"argon2 password check (real charger hash): {argon2_check_ms():.1f} ms per connect (once per charger, cached)"
    )

    servers = (
        ("websockets echo", serve_echo, ()),
        ("ocpp library CS (no persistence)", serve_ocpp_library, ()),
        ("evhub gateway (persisted)", serve_gateway, (db_url,)),
    )
    for conns in levels:
        # the three servers take turns, ``rounds`` times, and the median of each is reported: the machine's
        # speed drifts within minutes, and alternating keeps each comparison within the same few seconds
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _t, _e in servers}
        for _ in range(rounds):
            for name, target, extra in servers:
                procs, port = _start(target, *extra, processes=processes)
                try:
                    runs[name].append(asyncio.run(flat_out(port, conns, seconds, [p.pid for p in procs])))
                finally:
                    _stop(procs)
        results = {name: _median_run(r) for name, r in runs.items()}
        for name, r in results.items():
            each = " / ".join(f"{x['msgs_per_s']:.0f}" for x in runs[name])
            print(f"flat-out {conns:4d} conns {name:34s} {r['msgs_per_s']:9.0f} msg/s (runs: {each})  "
                  f"p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  CPU per message: server "
                  f"{r['server_us']:.0f} us, load generator {r['client_us']:.0f} us, PostgreSQL {r['postgres_us']:.0f} us")  # fmt: skip
        gw = results["evhub gateway (persisted)"]["msgs_per_s"]
        echo_ratios = [
            g["msgs_per_s"] / e["msgs_per_s"]
            for g, e in zip(runs["evhub gateway (persisted)"], runs["websockets echo"], strict=True)
        ]
        print(f"  {conns} conns: gateway / echo = {gw / results['websockets echo']['msgs_per_s']:.0%} "
              f"(per round: {' / '.join(f'{x:.0%}' for x in echo_ratios)})   "
              f"gateway / ocpp library = {gw / results['ocpp library CS (no persistence)']['msgs_per_s']:.2f}x")  # fmt: skip

    if n_chargers:
        procs, port = _start(serve_gateway, db_url, processes=processes)
        try:
            cap = asyncio.run(capacity(port, n_chargers, minutes, [p.pid for p in procs]))
        finally:
            _stop(procs)
        print(
            f"capacity: {cap['chargers']} chargers at 1 MeterValues/min: connected in {cap['connect_s']:.1f} s, "
            f"{cap['messages']} messages, p50 {cap['p50_ms']:.1f} ms, p99 {cap['p99_ms']:.1f} ms, "
            f"max {cap['max_ms']:.1f} ms; gateway RSS {cap['rss_base_mb']:.0f} -> {cap['rss_connected_mb']:.0f} MB "
            f"({cap['kb_per_connection']:.1f} KB per connection), {cap['rss_end_mb']:.0f} MB at the end"
        )


if __name__ == "__main__":
    main()
