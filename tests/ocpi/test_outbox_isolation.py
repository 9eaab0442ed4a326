"""Issue 15, items 3 and 4, for OCPI over real HTTP: one partner that is slow, failing, down or 404ing delays only
itself, and a retried push carries the same ids.

Two partners are real HTTP servers on loopback (uvicorn, :class:`kernel.httpserver.HttpServer`); partner A
misbehaves (answers after 30 s, answers 500, refuses connections, serves 404 pages) while partner B's CDRs go
out through the same dispatcher on its scheduled path. B's latency (queued to delivered, on the hub's clock)
stays that of a healthy partner; A gets at most its lane's concurrency at once and, while it fails, one probe per
pause; each partner is reached through one pooled HTTP client; once A is healthy it gets every message, and a
message it saw twice came with the same X-Correlation-ID (one per outbox row) and a new X-Request-ID per
attempt (``evhub-outbox-<row>-<attempt>``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from kernel.db.engine import Database
from kernel.httpserver import HttpServer
from kernel.models import OutboxMessage, OutboxStatus
from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.outbox import DEFAULT_LANE_CONCURRENCY, BackoffPolicy, OutboxDispatcher, enqueue, register_channel
from kernel.ports import free_port
from ocpi.push.outbox_message import CHANNEL
from ocpi.push.sender import OcpiSender
from ocpi.routing import CORRELATION_ID, REQUEST_ID
from tests.ocpi._helpers import wait_until

COUNT = 12


@dataclass
class Partner:
    """A partner's Receiver: ``mode`` ok, slow (answers after 30 s), error (500) or notfound (an HTML 404)."""

    mode: str = "ok"
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (path, request id, correlation id)
    in_flight: int = 0
    most_in_flight: int = 0
    healthy: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        self.seen.append(
            (request.url.path, request.headers.get(REQUEST_ID, ""), request.headers.get(CORRELATION_ID, ""))
        )
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.mode == "slow":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.healthy.wait(), timeout=30)
            elif self.mode == "error":
                return PlainTextResponse("boom", status_code=500)
            elif self.mode == "notfound":
                return PlainTextResponse("<html>Not Found</html>", status_code=404)
            return JSONResponse({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": None})
        finally:
            self.in_flight -= 1

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/cdrs/{cdr_id}", self.handle, methods=["PUT"])])


@pytest.fixture
async def partners() -> AsyncIterator[tuple[Partner, HttpServer, Partner, HttpServer]]:
    a, b = Partner(), Partner()
    servers = [HttpServer(a.app()), HttpServer(b.app())]
    for server in servers:
        await server.start()
    try:
        yield a, servers[0], b, servers[1]
    finally:
        a.healthy.set()
        for server in servers:
            await server.stop()


async def _partner(db: Database, name: str) -> int:
    async with db.session() as s:
        partner = OcpiPartner(name=name, status=PartnerStatus.REGISTERED, version="2.2.1")
        partner.outgoing_token = f"token-{name}"
        s.add(partner)
        await s.flush()
        return partner.id


async def _queue(db: Database, partner_id: int, base_url: str) -> None:
    async with db.session() as s:
        for i in range(COUNT):
            await enqueue(
                s,
                CHANNEL,
                str(partner_id),
                f"cdr:{partner_id}:{i}",
                {"method": "PUT", "url": f"{base_url}/cdrs/CDR-{i}", "body": {"id": f"CDR-{i}"}},
                dedupe_key=f"cdr:{partner_id}:{i}",
            )


async def _rows(db: Database, partner_id: int) -> list[OutboxMessage]:
    async with db.session() as s:
        query = select(OutboxMessage).where(OutboxMessage.destination == str(partner_id))
        return list((await s.scalars(query.order_by(OutboxMessage.id))).all())


async def _delivered(db: Database, partner_id: int) -> bool:
    return all(r.status == OutboxStatus.DELIVERED for r in await _rows(db, partner_id))


@pytest.mark.parametrize("mode", ["slow", "error", "refused", "notfound"])
async def test_one_bad_partner_delays_only_itself(
    db: Database, partners: tuple[Partner, HttpServer, Partner, HttpServer], mode: str
) -> None:
    a, a_server, b, b_server = partners
    a_id, b_id = await _partner(db, "A"), await _partner(db, "B")
    a_url = f"http://127.0.0.1:{free_port()}" if mode == "refused" else a_server.url  # nothing listens
    a.mode = "ok" if mode == "refused" else mode
    await _queue(db, a_id, a_url)
    await _queue(db, b_id, b_server.url)
    sender = OcpiSender(db)  # its 10 s timeout: A's 30 s answer is slower
    register_channel(CHANNEL, sender)
    dispatcher = OutboxDispatcher(db, channels=[CHANNEL], backoff=BackoffPolicy(base=0.3, cap=1.0, jitter=0))

    async def pumped(check):  # type: ignore[no-untyped-def]
        async def condition() -> bool:
            await dispatcher.pump()
            return bool(await check())

        return condition

    try:
        await wait_until(await pumped(lambda: _delivered(db, b_id)), "B delivered", timeout=20, every=0.05)
        latencies = [(r.delivered_at - r.created_at).total_seconds() for r in await _rows(db, b_id)]
        assert len(b.seen) == COUNT  # each once
        # B is done while A still hangs or fails: none of A's rows was delivered, a slow A's first requests
        # are still waiting for their answer (B never waited for them); loosely bounded, two shared cores
        assert not any(r.status == OutboxStatus.DELIVERED for r in await _rows(db, a_id))
        if (
            mode == "slow"
        ):  # A's lane is full of requests still waiting (its first ones may still be starting)
            await wait_until(lambda: a.in_flight == DEFAULT_LANE_CONCURRENCY, "A's lane full", timeout=8)
            assert not any(r.status == OutboxStatus.DELIVERED for r in await _rows(db, a_id))
        assert max(latencies) < 10.0, latencies
        if mode != "refused":
            assert a.most_in_flight <= DEFAULT_LANE_CONCURRENCY  # A's lane, never more at once
            assert len(a.seen) <= 2 * DEFAULT_LANE_CONCURRENCY  # probed, not hammered with its backlog
        # A recovers: it gets everything, and what it saw twice came with the same correlation id
        if mode == "refused":

            async def a_tried() -> bool:
                return any(r.attempts for r in await _rows(db, a_id))

            await wait_until(await pumped(a_tried), "A tried", timeout=20, every=0.05)
            assert all(r.status == OutboxStatus.PENDING for r in await _rows(db, a_id))
            assert len(sender.pool) == 2  # one pooled client per partner
            return
        a.mode = "ok"
        a.healthy.set()
        await wait_until(await pumped(lambda: _delivered(db, a_id)), "A delivered", timeout=30, every=0.05)
        await dispatcher.idle()
        assert len(sender.pool) == 2  # one pooled client per partner
        rows = {f"/cdrs/CDR-{i}": r for i, r in enumerate(await _rows(db, a_id))}
        for path, request_id, correlation_id in a.seen:
            row = rows[path]
            assert correlation_id == f"evhub-outbox-{row.id}"
            assert request_id.startswith(f"evhub-outbox-{row.id}-")
        retried = [r for r in rows.values() if r.attempts > 1]
        assert retried or mode == "slow"  # some were retried (a slow A answered its first requests at last)
        for row in retried:  # ...with one request id per attempt, the same correlation id
            ids = [rid for path, rid, _ in a.seen if rows[path].id == row.id]
            assert len(ids) == len(set(ids))
    finally:
        a.healthy.set()
        await dispatcher.aclose()
        await sender.stop()
    assert len(sender.pool) == 0  # closed on shutdown
