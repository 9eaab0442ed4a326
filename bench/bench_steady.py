"""Benchmark (issue 15 items 2 and 8): ``evhub serve``'s steady state against a bare echo, from several generators.

Run: ``flock /tmp/bench9.lock .venv/bin/python -m bench steady``. Environment:

* ``EVHUB_BENCH_DATABASE_URL`` — PostgreSQL for the hub (the schema is dropped and re-created!), default
  ``postgresql+asyncpg://postgres@127.0.0.1:5432/h_steady_bench`` (created when missing),
* ``EVHUB_BENCH_GENERATORS`` — load generator processes (default 3; uvloop, orjson, pre-built frames),
* ``EVHUB_BENCH_WORKERS`` — OCPP processes to measure, comma-separated (default ``1,2``): the echo server runs
  as that many processes on one port (SO_REUSEPORT), the hub as one ``evhub serve`` with
  ``EVHUB_OCPP_WORKERS`` set to it,
* ``EVHUB_BENCH_FLAT_CONNECTIONS`` (default 100), ``EVHUB_BENCH_SECONDS`` (10), ``EVHUB_BENCH_ROUNDS`` (3) —
  the flat-out runs (empty connections: none),
* ``EVHUB_BENCH_CHARGERS`` (default 10000), ``EVHUB_BENCH_MINUTES`` (3) — the capacity run (0 chargers: none),
* ``EVHUB_BENCH_CONNECT_S`` (default 240) — no new capacity connections after this; the run measures those
  that got in (and says how many),
* ``EVHUB_BENCH_BACKGROUND_CHARGERS`` (default 40, at most 100) — chargers running whole sessions during the
  capacity run,
* ``EVHUB_BENCH_STEP`` — ``prepare`` (seed the database, untimed: run it without the bench lock), ``run``
  (measure on a prepared database) or ``all`` (default).

1. *Flat-out*: each connection sends OCPP 1.6 MeterValues back to back (the next frame after the answer);
   the echo (websockets + orjson: parse, answer ``[3, id, {}]``) and the hub take turns, ``ROUNDS`` times;
   the hub commits every reading before its CALLRESULT. Per run: calls/s, p50/p99, CPU per message of the
   server processes, of PostgreSQL and of the generators (so one sees whether they were the limit).
2. *Capacity*: ``CHARGERS`` chargers (spread over the generators) each send one MeterValues a minute at a
   random phase for ``MINUTES``, while a realistic background runs in this process: ``BACKGROUND_CHARGERS``
   chargers run whole sessions (tokens of an OCPI partner, at 30x simulated time) that end, are priced and
   pushed as CDRs to the partner over HTTP (a real OCPI 2.2.1 eMSP registered through the credentials
   handshake), receipts go to an SMTP sink, and a fleet manager logs into the portal and opens pages every
   two seconds. Reports p50/p99/max of the meter values, memory per idle connection (RSS of the hub and its
   workers before and after connecting), CPU per meter value of the hub and of PostgreSQL, and what the
   background did (sessions, CDRs delivered, portal requests and their statuses).

Chargers are seeded with a cheap Argon2 hash: connecting 10,000 measures the gateway, not the hash (the
reconnect storm is ``bench_storm``). Prints figures; asserts nothing about timing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing as mp
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

PASSWORD = "bench-password"
MANAGER_EMAIL, MANAGER_PASSWORD = "manager@steady.example", "steady-manager-pw"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _identity(i: int) -> str:
    return f"B{i:06d}"


def _use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


# -- the bare echo server --------------------------------------------------------------------------------------


def serve_echo(port: int, ready: Any) -> None:
    _use_uvloop()
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        async for frame in ws:
            await ws.send(orjson.dumps([3, orjson.loads(frame)[1], {}]).decode())

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"], ping_interval=None,  # type: ignore[list-item]
                         compression=None, reuse_port=True, max_queue=None):  # fmt: skip
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


def _start_echo(processes: int) -> tuple[list[Any], int]:
    from kernel.ports import free_port

    port = free_port()
    ctx = mp.get_context("spawn")
    procs = []
    for _ in range(processes):
        ready = ctx.Event()
        proc = ctx.Process(target=serve_echo, args=(port, ready), daemon=True)
        proc.start()
        procs.append(proc)
        if not ready.wait(60):
            raise RuntimeError("echo server did not start")
    return procs, port


# -- database ----------------------------------------------------------------------------------------------------


async def _prepare(url: str, n: int, background: int, tokens: list[str]) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import insert, select, text

    import kernel.models  # noqa: F401
    from faults.run import provision
    from kernel.db.engine import Database
    from kernel.models import ChargePoint, Party
    from portal.admin import add_fleet, add_manager

    base, _, name = url.rpartition("/")
    admin = Database(f"{base}/postgres")
    async with admin.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if not await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await provision(db, background, tokens)  # migrations, the CPO, a site with an EVSE per charger, a tariff
    await add_fleet(db, "Steady Fleet", "EUR")
    await add_manager(db, "Steady Fleet", MANAGER_EMAIL, MANAGER_PASSWORD, name="Manager")
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    async with db.session() as s:
        cpo = (await s.execute(select(Party.id).where(Party.party_id == "AMP"))).scalar_one()
        rows = [
            {"identity": _identity(i), "password_hash": cheap, "ocpp_version": "1.6", "cpo_id": cpo}
            for i in range(n)
        ]
        for i in range(0, n, 1000):
            await s.execute(insert(ChargePoint), rows[i : i + 1000])
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
        await conn.execute(text("CHECKPOINT"))
    await db.dispose()


# -- generator processes -------------------------------------------------------------------------------------------


def _meter_frame(uid: str, tx: int, n: int) -> str:
    ts = (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    return (
        f'[2,"{uid}","MeterValues",{{"connectorId":1,"transactionId":{tx},"meterValue":[{{"timestamp":"{ts}",'
        f'"sampledValue":[{{"value":"{1000 + n}","context":"Sample.Periodic",'
        f'"measurand":"Energy.Active.Import.Register","unit":"Wh"}}]}}]}}]'
    )


def _generator(ids: list[int], commands: Any, results: Any) -> None:
    """One load generator process; commands: ("open", port, count), ("flat", seconds), ("steady", seconds,
    period), ("close",), ("stop",). Each answers one dict on ``results``."""
    _use_uvloop()
    asyncio.run(_generate(ids, commands, results))


async def _generate(ids: list[int], commands: Any, results: Any) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    loop = asyncio.get_running_loop()
    links: list[tuple[Any, int, int]] = []  # socket, transaction id, charger number

    async def open_one(port: int, i: int) -> tuple[Any, int, int]:
        auth = base64.b64encode(f"{_identity(i)}:{PASSWORD}".encode()).decode()
        for _attempt in range(30):
            try:
                ws = await connect(
                    f"ws://127.0.0.1:{port}/ocpp/{_identity(i)}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                    additional_headers={"Authorization": f"Basic {auth}"}, ping_interval=None,
                    open_timeout=60, compression=None, max_queue=None,
                )  # fmt: skip
                break
            except InvalidStatus as exc:  # a 503 of the admission control: after its Retry-After
                wait = float(exc.response.headers.get("Retry-After", "1"))
                await asyncio.sleep(min(5.0, wait) * (0.5 + random.random()))
            except (OSError, TimeoutError, InvalidHandshake):
                await asyncio.sleep(1 + random.random())
        else:
            raise RuntimeError(f"charger {i} could not connect")
        start = {"connectorId": 1, "idTag": "BENCH", "meterStart": 1000, "timestamp": "2026-01-01T00:00:00Z"}
        await ws.send(orjson.dumps([2, "s", "StartTransaction", start]).decode())
        answer = orjson.loads(await ws.recv())
        tx = answer[2].get("transactionId", 1) if answer[0] == 3 else 1
        return ws, int(tx), i

    async def flat(seconds: float) -> dict[str, Any]:
        count = 0
        lat: list[float] = []
        stop_at = time.perf_counter() + seconds

        async def drive(ws: Any, tx: int, k: int) -> None:
            nonlocal count
            n = k * 10_000_000 + int(time.time() * 10) % 1_000_000 * 10  # new timestamps each run
            while time.perf_counter() < stop_at:
                n += 1
                t = time.perf_counter()
                await ws.send(_meter_frame(str(n), tx, n))
                await ws.recv()
                lat.append(time.perf_counter() - t)
                count += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(drive(ws, tx, k) for ws, tx, k in links))
        return {"count": count, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - cpu0,
                "lat": lat[:: max(1, len(lat) // 20000)]}  # fmt: skip

    async def steady(seconds: float, period: float) -> dict[str, Any]:
        lat: list[float] = []
        end = time.perf_counter() + seconds

        async def drive(ws: Any, tx: int, k: int) -> None:
            await asyncio.sleep(min(seconds, random.uniform(0, period)))
            m = k * 10_000_000 + 5_000_000 + int(time.time()) % 100_000 * 20  # new timestamps each run
            while time.perf_counter() < end:
                m += 1
                t = time.perf_counter()
                await ws.send(_meter_frame(str(m), tx, m))
                await ws.recv()
                lat.append(time.perf_counter() - t)
                await asyncio.sleep(max(0.0, min(end, t + period) - time.perf_counter()))

        cpu0 = time.process_time()
        await asyncio.gather(*(drive(ws, tx, k) for ws, tx, k in links))
        return {"lat": lat, "cpu": time.process_time() - cpu0}

    while True:
        command = await loop.run_in_executor(None, commands.get)
        if command[0] == "stop":
            return
        if command[0] == "open":
            port, count, budget = command[1], command[2], command[3]
            t0 = time.perf_counter()
            for lo in range(0, count, 50):  # 50 upgrades at a time per generator: within the hub's gate
                if time.perf_counter() - t0 > budget:  # a starved hub: measure the chargers that got in
                    break
                opened = await asyncio.gather(
                    *(open_one(port, i) for i in ids[lo : min(count, lo + 50)]), return_exceptions=True
                )
                links += [link for link in opened if isinstance(link, tuple)]
            results.put({"opened": len(links), "seconds": time.perf_counter() - t0})
        elif command[0] == "flat":
            results.put(await flat(command[1]))
        elif command[0] == "steady":
            results.put(await steady(command[1], command[2]))
        elif command[0] == "close":
            for lo in range(0, len(links), 500):
                await asyncio.gather(
                    *(ws.close() for ws, _, _ in links[lo : lo + 500]), return_exceptions=True
                )
            links.clear()
            results.put({"closed": True})


class Generators:
    def __init__(self, n: int, chargers: int) -> None:
        ctx = mp.get_context("spawn")
        self.results: Any = ctx.Queue()
        self.queues = [ctx.Queue() for _ in range(n)]
        self.procs = [
            ctx.Process(
                target=_generator,
                args=(list(range(g, chargers, n)), self.queues[g], self.results),
                daemon=True,
            )
            for g in range(n)
        ]
        for p in self.procs:
            p.start()

    async def each(self, *command: Any, timeout: float = 900) -> list[dict[str, Any]]:
        for q in self.queues:
            q.put(command)
        loop = asyncio.get_running_loop()
        return [await loop.run_in_executor(None, self.results.get, True, timeout) for _ in self.queues]

    async def open(self, port: int, total: int, budget: float = 600.0) -> tuple[float, int]:
        """Connect ``total`` chargers (each with a running transaction); no new ones after ``budget`` seconds.
        Returns the seconds it took and how many are connected."""
        per = [len(range(g, total, len(self.queues))) for g in range(len(self.queues))]
        for q, count in zip(self.queues, per, strict=True):
            q.put(("open", port, count, budget))
        loop = asyncio.get_running_loop()
        parts = [await loop.run_in_executor(None, self.results.get, True, budget + 300) for _ in self.queues]
        return max(p["seconds"] for p in parts), sum(p["opened"] for p in parts)

    def stop(self) -> None:
        for q in self.queues:
            q.put(("stop",))
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()


# -- measuring -----------------------------------------------------------------------------------------------------


def _tree(pid: int) -> list[Any]:
    import psutil

    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    return []


def _cpu_of(procs: list[Any]) -> float:
    import psutil

    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _pg_procs() -> list[Any]:
    import psutil

    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


def _rss_mb(procs: list[Any]) -> float:
    import psutil

    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _flat_run(
    gens: Generators, port: int, server: list[Any], conns: int, seconds: float
) -> dict[str, Any]:
    await gens.open(port, conns)
    await gens.each("flat", 1.0)  # warm-up: the hub's meter writer opens its own PostgreSQL connection
    pg = _pg_procs()
    cpu0 = (_cpu_of(server), _cpu_of(pg))
    parts = await gens.each("flat", seconds)
    cpu1 = (_cpu_of(server), _cpu_of(pg))
    await gens.each("close")
    count = sum(p["count"] for p in parts)
    lat = [x for p in parts for x in p["lat"]]
    wall = max(p["seconds"] for p in parts)
    return {
        "rate": count / wall, "p50": _pct(lat, 0.5), "p99": _pct(lat, 0.99),
        "server_us": (cpu1[0] - cpu0[0]) / count * 1e6, "pg_us": (cpu1[1] - cpu0[1]) / count * 1e6,
        "gen_us": sum(p["cpu"] for p in parts) / count * 1e6,
        "gen_busy": sum(p["cpu"] for p in parts) / wall,  # cores the generators used
        "load": _load(),
    }  # fmt: skip


def _line(name: str, r: dict[str, Any]) -> str:
    return (
        f"  {name:28s} {r['rate']:8.0f} calls/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  CPU per "
        f"message: server {r['server_us']:4.0f} us, PostgreSQL {r['pg_us']:3.0f} us, generators "
        f"{r['gen_us']:3.0f} us ({r['gen_busy']:.2f} cores)  load {r['load']}"
    )


async def _flat_out(workers: int, gens: Generators, hub_url: str, echo: tuple[list[Any], int], hub: Any,
                    conns: int, seconds: float, rounds: int) -> None:  # fmt: skip
    echo_procs, echo_port = echo
    echo_tree = [p for proc in echo_procs for p in _tree(proc.pid)]
    runs: dict[str, list[dict[str, Any]]] = {"echo": [], "hub": []}
    for _ in range(rounds):
        runs["echo"].append(await _flat_run(gens, echo_port, echo_tree, conns, seconds))
        runs["hub"].append(await _flat_run(gens, hub.ocpp_port, _tree(hub.proc.pid), conns, seconds))
        print(_line(f"echo x{workers}", runs["echo"][-1]), flush=True)
        print(_line(f"evhub serve, {workers} OCPP proc", runs["hub"][-1]), flush=True)
    ratios = [h["rate"] / e["rate"] for h, e in zip(runs["hub"], runs["echo"], strict=True)]
    med = {k: sorted(v, key=lambda r: r["rate"])[len(v) // 2] for k, v in runs.items()}
    print(
        f"flat-out {conns} conns, {workers} OCPP process(es): echo median {med['echo']['rate']:.0f}/s, hub median "
        f"{med['hub']['rate']:.0f}/s; hub / echo per round {' / '.join(f'{x:.0%}' for x in ratios)} "
        f"(median {statistics.median(ratios):.0%})",
        flush=True,
    )


async def _portal(base: str, stats: dict[str, Any], stop: asyncio.Event) -> None:
    """A fleet manager: the login form, logging in, the dashboard and the drivers' page; every 2 s."""
    import re

    import httpx

    nonce = re.compile(r'name="csrf_token" value="([^"]+)"')

    async def timed(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response:
        t = time.perf_counter()
        r = await client.request(method, path, **kw)
        stats["ms"].append((time.perf_counter() - t) * 1000)
        stats["status"][r.status_code] = stats["status"].get(r.status_code, 0) + 1
        return r

    while not stop.is_set():
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            try:
                form = await timed(client, "GET", "/portal/login")
                found = nonce.search(form.text)
                data = {
                    "email": MANAGER_EMAIL,
                    "password": MANAGER_PASSWORD,
                    "csrf_token": found.group(1) if found else "",
                }
                await timed(client, "POST", "/portal/login", data=data)
                await timed(client, "GET", "/portal/")
                await timed(client, "GET", "/portal/drivers")
            except httpx.HTTPError:
                stats["status"]["error"] = stats["status"].get("error", 0) + 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)


async def _capacity(workers: int, gens: Generators, hub: Any, n: int, minutes: float, fleet: Any,
                    partner: Any) -> None:  # fmt: skip
    tree = _tree(hub.proc.pid)
    rss0 = _rss_mb(tree)
    connect_s, opened = await gens.open(
        hub.ocpp_port, n, float(os.environ.get("EVHUB_BENCH_CONNECT_S", "240"))
    )
    await asyncio.sleep(3)
    tree = _tree(hub.proc.pid)
    rss1 = _rss_mb(tree)
    portal: dict[str, Any] = {"ms": [], "status": {}}
    stop = asyncio.Event()
    portal_task = asyncio.create_task(_portal(f"http://127.0.0.1:{hub.http_port}", portal, stop))
    pg = _pg_procs()
    cdrs0, sessions0 = len(partner.accepted()), sum(len(c.ledger.stops_acked) for c in fleet.chargers)
    cpu0, t0, load0 = (_cpu_of(tree), _cpu_of(pg)), time.perf_counter(), _load()
    parts = await gens.each("steady", minutes * 60, 60.0)
    wall = time.perf_counter() - t0
    cpu1 = (_cpu_of(tree), _cpu_of(pg))
    stop.set()
    await portal_task
    lat = [x for p in parts for x in p["lat"]]
    count = len(lat)
    sessions = sum(len(c.ledger.stops_acked) for c in fleet.chargers) - sessions0
    await gens.each("close")
    print(
        f"capacity, {workers} OCPP process(es): {opened} of {n} chargers connected in {connect_s:.1f} s; {count} meter values "
        f"in {wall:.0f} s: p50 {_pct(lat, 0.5):.1f} ms, p99 {_pct(lat, 0.99):.1f} ms, max {_pct(lat, 1.0):.1f} ms; "
        f"hub RSS {rss0:.0f} -> {rss1:.0f} MB ({(rss1 - rss0) * 1024 / max(1, opened):.1f} KiB per idle connection); CPU: hub "
        f"{cpu1[0] - cpu0[0]:.1f} s ({(cpu1[0] - cpu0[0]) / max(1, count) * 1e6:.0f} us per meter value, background "
        f"included), PostgreSQL {cpu1[1] - cpu0[1]:.1f} s ({(cpu1[1] - cpu0[1]) / max(1, count) * 1e6:.0f} us), "
        f"generators {sum(p['cpu'] for p in parts):.1f} s; load {load0} -> {_load()}",
        flush=True,
    )
    print(
        f"  background: {sessions} sessions ended, {len(partner.accepted()) - cdrs0} CDRs delivered to the partner, "
        f"portal {len(portal['ms'])} requests (statuses {portal['status']}, p50 {_pct([x / 1000 for x in portal['ms']], 0.5):.0f} ms, "
        f"p99 {_pct([x / 1000 for x in portal['ms']], 0.99):.0f} ms)",
        flush=True,
    )


async def _main() -> None:
    import logging

    from faults.chargers import Fleet
    from faults.hub import Hub
    from faults.run import PASSWORD as FLEET_PASSWORD
    from faults.run import _register
    from faults.sinks import MailSink, Partner
    from kernel.db.engine import Database
    from kernel.ports import free_port
    from simulators.chargepoints.charger import ChargerSpec

    logging.getLogger("simulators.chargepoints.charger").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    url = os.environ.get(
        "EVHUB_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/h_steady_bench"
    )
    n_gens = int(os.environ.get("EVHUB_BENCH_GENERATORS", "3"))
    workers_list = [int(x) for x in os.environ.get("EVHUB_BENCH_WORKERS", "1,2").split(",") if x.strip()]
    conns = int(os.environ.get("EVHUB_BENCH_FLAT_CONNECTIONS", "100") or 0)
    seconds = float(os.environ.get("EVHUB_BENCH_SECONDS", "10"))
    rounds = int(os.environ.get("EVHUB_BENCH_ROUNDS", "3"))
    n = int(os.environ.get("EVHUB_BENCH_CHARGERS", "10000"))
    minutes = float(os.environ.get("EVHUB_BENCH_MINUTES", "3"))
    n_bg = int(os.environ.get("EVHUB_BENCH_BACKGROUND_CHARGERS", "40"))
    step = os.environ.get("EVHUB_BENCH_STEP", "all")
    if step in ("all", "prepare"):
        print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, load {_load()}; preparing", flush=True)
        await _prepare(url, max(n, conns), max(n_bg, 100), [])
        print(
            f"{datetime.now(UTC):%H:%M:%S} UTC prepared {max(n, conns)} chargers; load {_load()}", flush=True
        )
        if step == "prepare":
            return
    # a partner of its own for each run (a prepared database may have served earlier runs)
    party = "S" + "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2))
    tokens = [f"{party}{i:05d}" for i in range(16)]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, {os.cpu_count()} cpus, load {_load()}", flush=True)
    work = Path(os.environ.get("EVHUB_BENCH_WORK", "/tmp/steady"))
    work.mkdir(parents=True, exist_ok=True)
    gens = Generators(n_gens, max(n, conns))
    sink = MailSink()
    await sink.start()
    partner = Partner(f"Steady Partner {party}", "DE", party)
    db = Database(url)
    try:
        for workers in workers_list:
            hub = Hub(url, free_port(), free_port(), sink.url, work / f"evhub-{workers}.log")
            hub.env.update({"EVHUB_OCPP_WORKERS": str(workers), "EVHUB_OCPP_RATE_LIMIT": "100000",
                            "EVHUB_OCPP_RATE_BURST": "100000"})  # fmt: skip
            echo = _start_echo(workers)
            await hub.start()
            await asyncio.sleep(3 if workers > 1 else 0)  # the workers bind after the main process
            try:
                if conns:
                    await _flat_out(workers, gens, url, echo, hub, conns, seconds, rounds)
                for p in echo[0]:
                    p.kill()
                if n:
                    if not partner.serving:  # registered once: its CDRs go to its own URL, any hub
                        await _register(db, hub, partner, tokens)
                    specs = [
                        ChargerSpec(identity=f"FLT-{i:04d}", password=FLEET_PASSWORD, tokens=tokens,
                                    max_power_w=22000.0, idle_s=(60.0, 300.0), energy_wh=(1500.0, 4000.0))
                        for i in range(n_bg)
                    ]  # fmt: skip
                    fleet = Fleet(specs, f"ws://127.0.0.1:{hub.ocpp_port}/ocpp", 30.0)
                    fleet.start()
                    deadline = time.monotonic() + 120
                    while fleet.online() < n_bg and time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                    try:
                        await _capacity(workers, gens, hub, n, minutes, fleet, partner)
                    finally:
                        for t in fleet.tasks:
                            t.cancel()
                        await asyncio.gather(*fleet.tasks, return_exceptions=True)
            finally:
                for p in echo[0]:
                    p.kill()
                hub.stop()
    finally:
        gens.stop()
        for closing in (partner.stop(), sink.stop(), db.dispose()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closing, 10)


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
