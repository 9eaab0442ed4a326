"""A per-object conflict from a partner fails only that object (issue 15 items 3 and 6).

A partner answering HTTP 409 (or 412/423/424/428) for one CDR is up and answering: that row backs off on its
own, while the partner's lane keeps delivering its other CDRs at once (before this, a 409 counted as a lane
failure and paused every delivery to that partner for the lane's backoff). The conflict is the row's error,
not the partner's health; once the partner stops conflicting, the row goes on its next attempt.

The partner is a real HTTP server on loopback, the lane delivers one message at a time (so CDR-3's answer comes
before CDR-4 is sent); the backoff is long (10 minutes) so a paused lane could not deliver the others within the
test's bound, and the row's own backoff is passed by moving the hub's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kernel.db.engine import Database
from kernel.httpserver import HttpServer
from kernel.models import OutboxMessage, OutboxStatus
from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.outbox import BackoffPolicy, OutboxDispatcher, enqueue, register_channel
from ocpi.push.classify import classify
from ocpi.push.outbox_message import CHANNEL
from ocpi.push.sender import OcpiSender
from tests.ocpi._helpers import advance_clock, wait_until

COUNT = 6
CONFLICTED = "CDR-3"


class ConflictingPartner:
    """A CDR Receiver that answers 409 for one CDR id while ``conflict`` holds, 200/1000 otherwise."""

    def __init__(self) -> None:
        self.conflict = True
        self.seen: list[str] = []

    async def handle(self, request: Request) -> Response:
        cdr_id = request.path_params["cdr_id"]
        self.seen.append(cdr_id)
        if self.conflict and cdr_id == CONFLICTED:
            return JSONResponse({"status_code": 3000, "status_message": "CDR locked"}, status_code=409)
        return JSONResponse({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": None})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/cdrs/{cdr_id}", self.handle, methods=["PUT"])])


@pytest.fixture
async def partner() -> AsyncIterator[tuple[ConflictingPartner, HttpServer]]:
    receiver = ConflictingPartner()
    server = HttpServer(receiver.app())
    await server.start()
    try:
        yield receiver, server
    finally:
        await server.stop()


@pytest.mark.parametrize("http", [409, 412, 423, 424, 428])
def test_object_conflicts_are_retried_for_that_object_only(http: int) -> None:
    result = classify(http, None, {"retry-after": "5"}, f"PUT x: HTTP {http}", {})
    assert not result.ok and not result.permanent and result.isolated
    assert result.retry_after == 5.0
    for lane_wide in (500, 503, 429, 404, 401):  # the partner itself is unwell: its lane pauses
        assert not classify(lane_wide, None, {}, "x", {}).isolated


async def _rows(db: Database) -> dict[str, OutboxMessage]:
    async with db.session() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    return {r.payload["body"]["id"]: r for r in rows}


async def test_a_409_for_one_cdr_does_not_pause_the_partners_other_cdrs(
    db: Database, partner: tuple[ConflictingPartner, HttpServer]
) -> None:
    receiver, server = partner
    async with db.session() as s:
        row = OcpiPartner(name="Conflicting", status=PartnerStatus.REGISTERED, version="2.2.1")
        row.outgoing_token = "token-conflicting"
        s.add(row)
        await s.flush()
        partner_id = row.id
        for i in range(COUNT):
            await enqueue(
                s,
                CHANNEL,
                str(partner_id),
                f"cdr:{i}",
                {"method": "PUT", "url": f"{server.url}/cdrs/CDR-{i}", "body": {"id": f"CDR-{i}"}},
                dedupe_key=f"cdr:{i}",
            )
    sender = OcpiSender(db)
    register_channel(
        CHANNEL, sender, concurrency=1
    )  # one at a time: CDR-3's answer comes before CDR-4 starts
    # a lane paused by the 409 would stay closed 10 minutes: far past the bound below
    dispatcher = OutboxDispatcher(
        db, channels=[CHANNEL], backoff=BackoffPolicy(base=600.0, cap=600.0, jitter=0), lane_pause_cap=600.0
    )

    async def pumped_until(check):
        async def condition() -> bool:
            await dispatcher.pump()
            return bool(await check())

        return condition

    async def others_delivered() -> bool:
        rows = await _rows(db)
        return all(r.status == OutboxStatus.DELIVERED for k, r in rows.items() if k != CONFLICTED)

    try:
        await wait_until(
            await pumped_until(others_delivered), "the other CDRs delivered", timeout=90, every=0.05
        )
        await dispatcher.idle()
        conflicted = (await _rows(db))[CONFLICTED]
        assert conflicted.status == OutboxStatus.PENDING
        assert conflicted.attempts == 1 and "HTTP 409" in (conflicted.last_error or "")
        assert receiver.seen.count(CONFLICTED) == 1  # backing off on its own, not hammered
        assert sorted(set(receiver.seen)) == sorted(f"CDR-{i}" for i in range(COUNT))
        async with db.session() as s:
            health = await s.get(OcpiPartner, partner_id)
            assert (
                health is not None and health.last_error_at is None
            )  # the row's conflict, not the partner's
        # the partner resolves its conflict; the row's own backoff passes; it goes
        receiver.conflict = False
        advance_clock(601)

        async def conflicted_delivered() -> bool:
            return (await _rows(db))[CONFLICTED].status == OutboxStatus.DELIVERED

        await wait_until(await pumped_until(conflicted_delivered), "the conflicted CDR delivered", timeout=30)
        assert receiver.seen.count(CONFLICTED) == 2
    finally:
        await dispatcher.aclose()
        await sender.stop()
