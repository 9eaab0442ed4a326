"""Outbox isolation (issue 15, item 3): a healthy partner B's delivery latency while partner A is healthy (the
baseline, measured in the same run), answers after 30 s, answers 500, refuses connections or serves 404 pages;
and a driver's receipt's, queued after both partners' backlogs (the outbox priority: a receipt goes before bulk).

Both partners are real HTTP servers on loopback; the hub side is the real ``ocpi`` channel sender (one pooled
client per partner) and :class:`kernel.outbox.OutboxDispatcher` on its scheduled path (``scheduled`` every
second, as ``evhub serve`` runs it) on a fresh SQLite database (``EVHUB_BENCH_DATABASE_URL`` for PostgreSQL:
that database is dropped and recreated). ``N`` CDR pushes per partner are queued at once; B's latency is queued
to delivered on the hub's clock. Prints one line per scenario: B's p50/p95/max, and how many requests A got
while B was delivered (its lane's concurrency, then one probe per pause). ``R`` receipts (20;
``BENCH_OUTBOX_RECEIPTS``) are queued right after the pushes, at the default priority as ``portal.receipts``
queues them, on an ``email``-like channel through one shared lane whose sender is a sink that accepts at once
(the figure is the dispatcher's wait, not an SMTP server's); their latency is printed beside B's.

    .venv/bin/python -m bench outbox            # N=200
    BENCH_OUTBOX_N=500 .venv/bin/python -m bench outbox
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import kernel.models  # noqa: F401  (every table)
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.httpserver import HttpServer
from kernel.models import OutboxMessage, OutboxStatus
from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.outbox import DeliveryResult, OutboxDispatcher, enqueue, register_channel, unregister_channel
from kernel.ports import free_port
from ocpi.push.outbox_message import CHANNEL, PRIORITY_BY_MODULE
from ocpi.push.sender import OcpiSender

SCENARIOS = ("healthy", "slow", "error", "refused", "notfound")
MAIL = "bench-email"


class _Partner:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.stop = asyncio.Event()

    async def handle(self, request: Request) -> Response:
        self.requests += 1
        if self.mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=30)
        elif self.mode == "error":
            return PlainTextResponse("boom", status_code=500)
        elif self.mode == "notfound":
            return PlainTextResponse("<html>Not Found</html>", status_code=404)
        return JSONResponse({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": None})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/cdrs/{cdr_id}", self.handle, methods=["PUT"])])


async def _database(folder: Path) -> Database:
    url = os.environ.get("EVHUB_BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{folder / 'outbox.db'}"
    db = Database(url)
    if not db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    await upgrade(db)
    return db


async def _sink(message: OutboxMessage) -> DeliveryResult:
    """The mail server: accepts every message at once."""
    await asyncio.sleep(0)
    return DeliveryResult.delivered()


def _spread(latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
        "max": latencies[-1],
    }


async def _scenario(mode: str, n: int, receipts: int, folder: Path) -> dict[str, Any]:
    db = await _database(folder / mode)
    a, b = _Partner("ok" if mode in ("healthy", "refused") else mode), _Partner("ok")
    servers = [HttpServer(a.app()), HttpServer(b.app())]
    for server in servers:
        await server.start()
    ids = []
    async with db.session() as s:
        for name in ("A", "B"):
            partner = OcpiPartner(name=name, status=PartnerStatus.REGISTERED, version="2.2.1")
            partner.outgoing_token = f"token-{name}"
            s.add(partner)
            await s.flush()
            ids.append(partner.id)
    a_url = f"http://127.0.0.1:{free_port()}" if mode == "refused" else servers[0].url
    async with db.session() as s:
        for i in range(n):
            for pid, url in ((ids[0], a_url), (ids[1], servers[1].url)):
                body = {"method": "PUT", "url": f"{url}/cdrs/CDR-{i}", "body": {"id": f"CDR-{i}"}}
                await enqueue(
                    s, CHANNEL, str(pid), f"cdr:{pid}:{i}", body, priority=PRIORITY_BY_MODULE["cdrs"]
                )
        for i in range(receipts):  # queued after both backlogs, at enqueue's default priority (a receipt's)
            await enqueue(s, MAIL, f"driver{i}@example.com", f"receipt:{i}", {"kind": "receipt", "n": i})
    sender = OcpiSender(db)
    register_channel(CHANNEL, sender)
    register_channel(MAIL, _sink, shared_destination="smtp")
    dispatcher = OutboxDispatcher(db, channels=[CHANNEL, MAIL])
    started = time.monotonic()
    try:
        while True:
            await dispatcher.scheduled()
            async with db.session() as s:
                rows = (
                    await s.scalars(select(OutboxMessage).where(OutboxMessage.destination == str(ids[1])))
                ).all()
                mails = (await s.scalars(select(OutboxMessage).where(OutboxMessage.channel == MAIL))).all()
            if all(r.status == OutboxStatus.DELIVERED for r in [*rows, *mails]):
                break
            if time.monotonic() - started > 600:
                raise RuntimeError(f"{mode}: B not delivered in 10 minutes")
            await asyncio.sleep(1.0)  # the scheduler's interval (deliveries also pump as they finish)
        latencies = [(r.delivered_at - r.created_at).total_seconds() for r in rows]
        mail_latencies = [(r.delivered_at - r.created_at).total_seconds() for r in mails]
    finally:
        a.stop.set()
        await dispatcher.aclose()
        await sender.stop()
        unregister_channel(CHANNEL)
        unregister_channel(MAIL)
        for server in servers:
            await server.stop()
        await db.dispose()
    return {
        "mode": mode,
        **_spread(latencies),
        "receipt": _spread(mail_latencies) if mail_latencies else None,
        "a_requests": a.requests,
    }


async def _run(n: int, receipts: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for mode in SCENARIOS:
            (Path(tmp) / mode).mkdir()
            out.append(await _scenario(mode, n, receipts, Path(tmp)))
        return out


def main() -> None:
    n = int(os.environ.get("BENCH_OUTBOX_N", "200"))
    receipts = int(os.environ.get("BENCH_OUTBOX_RECEIPTS", "20"))
    results = asyncio.run(_run(n, receipts))
    base = results[0]
    print(
        f"{n} CDR pushes queued per partner, then {receipts} receipts; "
        "B's and the receipts' latency (queued -> delivered) while A is ..."
    )
    for r in results:
        ratio = r["p95"] / base["p95"] if base["p95"] else float("nan")
        mail = r["receipt"]
        receipt = (
            f"  receipts p50 {mail['p50']:5.2f} s  p95 {mail['p95']:5.2f} s  max {mail['max']:5.2f} s"
            if mail
            else ""
        )
        print(
            f"  A {r['mode']:<8}  B p50 {r['p50']:6.2f} s  p95 {r['p95']:6.2f} s  max {r['max']:6.2f} s  "
            f"(p95 {ratio:4.2f}x healthy)  A got {r['a_requests']} requests{receipt}"
        )


if __name__ == "__main__":
    main()
