"""Issue 15: outbox rows carry a priority and the dispatcher claims by (priority, due time), so a backlog of bulk
OCPI pushes never delays a driver's receipt or a command result.

The bulk rows are queued with the priority the OCPI pushes use (``ocpi.push.outbox_message``), the receipt and
the command result with the default of :func:`kernel.outbox.enqueue`, as ``portal.receipts``, billing's
reminders and payments and ``ocpi.command_runner`` queue them. Order is asserted on the deliveries the senders
record, never on timing: the partner's deliveries hang on an event until the test lets them go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import OutboxMessage, OutboxPriority, OutboxStatus
from kernel.outbox import (
    DEFAULT_LANE_CONCURRENCY,
    DeliveryResult,
    OutboxDispatcher,
    enqueue,
    register_channel,
    unregister_channel,
)
from ocpi.push.outbox_message import PRIORITY_BY_MODULE
from tests.ocpi._helpers import wait_until

PUSHES = "priority-test-ocpi"
MAIL = "priority-test-email"
BACKLOG = 60


@pytest.fixture
async def channels() -> AsyncIterator[None]:
    yield
    unregister_channel(PUSHES)
    unregister_channel(MAIL)


async def _queue_backlog(db: Database, n: int) -> None:
    """``n`` location PUTs to partner P, each its own object, at the priority the OCPI push gives them."""
    async with db.session() as s:
        for i in range(n):
            await enqueue(
                s, PUSHES, "P", f"ocpi:P:locations:{i}", {"n": i}, priority=PRIORITY_BY_MODULE["locations"]
            )


async def _queue(db: Database, channel: str, destination: str, name: str) -> None:
    async with db.session() as s:  # the default priority, as receipts and command results are queued
        await enqueue(s, channel, destination, f"{name}:1", {"n": name})


async def _delivered(db: Database) -> int:
    async with db.session() as s:
        rows = (
            await s.scalars(select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.DELIVERED))
        ).all()
    return len(rows)


async def test_a_receipt_and_a_command_result_go_before_a_partners_backlog(
    db: Database, channels: None
) -> None:
    gate = asyncio.Event()
    started: list[object] = []

    async def pushes(msg: OutboxMessage) -> DeliveryResult:
        started.append(msg.payload["n"])
        await gate.wait()  # the partner is slow: its deliveries hang until the test lets them go
        return DeliveryResult.delivered()

    async def mail(msg: OutboxMessage) -> DeliveryResult:
        started.append(msg.payload["n"])
        return DeliveryResult.delivered()

    register_channel(PUSHES, pushes)
    register_channel(MAIL, mail, shared_destination="smtp")
    await _queue_backlog(db, BACKLOG)
    d = OutboxDispatcher(db, channels=[PUSHES, MAIL], batch_size=10)
    try:
        await d.pump()
        assert started == list(range(DEFAULT_LANE_CONCURRENCY))  # P's lane is full, its deliveries hang
        # queued afterwards: a driver's receipt (the mail lane) and a command result for the same partner
        await _queue(db, MAIL, "driver@example.com", "receipt")
        await _queue(db, PUSHES, "P", "command-result")

        async def receipt_sent() -> bool:
            await d.pump()
            return "receipt" in started

        await wait_until(receipt_sent, "the receipt delivered while the partner's backlog hangs", every=0.02)
        assert await _delivered(db) == 1  # the receipt only: none of the backlog finished
        gate.set()

        async def all_sent() -> bool:
            await d.pump()
            return await _delivered(db) == BACKLOG + 2

        await wait_until(all_sent, "everything delivered", every=0.02)
        await d.idle()
        # the command result takes the first slot the partner's lane frees, before the rest of its backlog
        first_free = DEFAULT_LANE_CONCURRENCY + 1  # the hanging deliveries, then the receipt
        assert started.index("command-result") == first_free
        assert sorted(n for n in started if isinstance(n, int)) == list(range(BACKLOG))
    finally:
        gate.set()
        await d.aclose()


async def test_the_batch_claim_takes_the_receipt_before_any_bulk_push(db: Database, channels: None) -> None:
    register_channel(PUSHES, lambda m: asyncio.sleep(0, DeliveryResult.delivered()))
    register_channel(MAIL, lambda m: asyncio.sleep(0, DeliveryResult.delivered()), shared_destination="smtp")
    await _queue_backlog(db, BACKLOG)
    await _queue(db, MAIL, "driver@example.com", "receipt")  # enqueued after the backlog, due later
    d = OutboxDispatcher(db, channels=[PUSHES, MAIL], batch_size=20)
    claims = await d.claim()
    # by (priority, due time): the receipt first, then the backlog oldest first (before: 20 pushes, no receipt)
    assert [c.message.payload["n"] for c in claims] == ["receipt", *range(19)]
    assert claims[0].message.priority == OutboxPriority.URGENT
    assert {c.message.priority for c in claims[1:]} == {OutboxPriority.BULK}
