"""Issue 15, items 3 and 4: the outbox delivers per destination lane, and a send the destination cannot dedupe is
never made twice.

A destination that hangs keeps only its own lane busy (its concurrency, nothing more claimed for it) while the
others deliver; a failing destination is probed one message at a time with a pause; the scheduled pump never
waits for a delivery; a row an earlier attempt marked *sending* and never finished is parked as uncertain, not
sent again; a sender that marked and then timed out parks it the same way; a sender that marked and said
nothing went out is retried.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from kernel.clock import pinned
from kernel.db.engine import Database
from kernel.models import OutboxMessage, OutboxStatus
from kernel.outbox import (
    DEFAULT_LANE_CONCURRENCY,
    SENDING,
    UNCERTAIN,
    BackoffPolicy,
    DeliveryResult,
    OutboxDispatcher,
    enqueue,
    mark_sending,
    register_channel,
    release,
    unregister_channel,
)
from kernel.timeutil import utcnow
from tests.ocpi._helpers import wait_until

CHANNEL = "lanes-test"
FAST = BackoffPolicy(base=0.05, cap=0.2, jitter=0)


@pytest.fixture
async def channel() -> AsyncIterator[str]:
    yield CHANNEL
    unregister_channel(CHANNEL)


async def _rows(db: Database) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def _count(db: Database, destination: str, status: OutboxStatus) -> int:
    return sum(1 for r in await _rows(db) if r.destination == destination and r.status == status)


async def _enqueue(db: Database, destination: str, n: int, *, keys: int = 0) -> None:
    async with db.session() as s:
        for i in range(n):
            key = f"{destination}-{i % keys}" if keys else f"{destination}-{i}"
            await enqueue(s, CHANNEL, destination, key, {"n": i})


async def _pump_until(d: OutboxDispatcher, condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Run the scheduled path (pump every 50 ms, as the scheduler would) until ``condition``."""

    async def pumped() -> bool:
        await d.pump()
        return bool(await condition())

    await wait_until(pumped, what, timeout=timeout, every=0.05)


async def test_a_hanging_destination_delays_only_itself(db: Database, channel: str) -> None:
    release_a = asyncio.Event()
    a_started = 0
    b_order: dict[str, list[int]] = defaultdict(list)

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        nonlocal a_started
        if msg.destination == "A":
            a_started += 1
            await release_a.wait()  # a partner answering after a very long time
        else:
            b_order[msg.ordering_key].append(msg.payload["n"])
        return DeliveryResult.delivered()

    register_channel(channel, sender)
    await _enqueue(db, "A", 30)
    await _enqueue(db, "B", 40, keys=5)  # 5 ordering keys, 8 messages each
    d = OutboxDispatcher(db, channels=[channel], backoff=FAST)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        # the pump returns at once although A's deliveries hang
        assert await asyncio.wait_for(d.pump(), timeout=5) > 0

        async def b_done() -> bool:
            return await _count(db, "B", OutboxStatus.DELIVERED) == 40

        await _pump_until(d, b_done, "B delivered while A hangs")
        b_took = loop.time() - started
        # A holds exactly its lane's concurrency; nothing more of A was claimed meanwhile
        assert a_started == DEFAULT_LANE_CONCURRENCY
        assert await _count(db, "A", OutboxStatus.DELIVERED) == 0
        assert b_took < 8.0  # loosely bounded: a hanging A costs B nothing like its hang
        for key, ns in b_order.items():  # order per key held
            assert ns == sorted(ns), key
        release_a.set()

        async def a_done() -> bool:
            return await _count(db, "A", OutboxStatus.DELIVERED) == 30

        await _pump_until(d, a_done, "A delivered once it answers")
        await d.idle()
    finally:
        release_a.set()
        await d.aclose()
    rows = await _rows(db)
    assert all(r.status == OutboxStatus.DELIVERED and r.attempts == 1 for r in rows)


async def test_a_failing_destination_is_probed_not_hammered(db: Database, channel: str) -> None:
    attempts: dict[str, int] = defaultdict(int)
    a_in_flight = 0
    a_most = 0

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        nonlocal a_in_flight, a_most
        attempts[msg.destination] += 1
        if msg.destination == "A":
            a_in_flight += 1
            a_most = max(a_most, a_in_flight)
            await asyncio.sleep(0)
            a_in_flight -= 1
            return DeliveryResult.retry("HTTP 500")
        return DeliveryResult.delivered()

    register_channel(channel, sender)
    await _enqueue(db, "A", 50)
    await _enqueue(db, "B", 20)
    d = OutboxDispatcher(db, channels=[channel], backoff=BackoffPolicy(base=0.5, cap=5, jitter=0))
    try:

        async def b_done() -> bool:
            return await _count(db, "B", OutboxStatus.DELIVERED) == 20

        await _pump_until(d, b_done, "B delivered while A fails")
        await d.idle()
    finally:
        await d.aclose()
    # the first claim of A may take its full concurrency; after the first failure one probe per pause
    assert attempts["B"] == 20
    assert attempts["A"] <= DEFAULT_LANE_CONCURRENCY + 3, attempts
    assert await _count(db, "A", OutboxStatus.PENDING) == 50  # nothing lost, nothing parked


async def test_a_row_left_sending_is_parked_uncertain_not_resent(db: Database, channel: str) -> None:
    sent: list[int] = []

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        assert await mark_sending(db, msg, message_id=f"<m{msg.id}@test>")
        sent.append(msg.id)
        return DeliveryResult.delivered()

    register_channel(channel, sender)
    await _enqueue(db, "mail", 1)
    d = OutboxDispatcher(db, channels=[channel], backoff=FAST, lease_seconds=60)
    # a process claims the row, marks it sending and dies before it learns the outcome
    (claim,) = await d.claim()
    assert await mark_sending(db, claim.message, message_id="<m1@test>")
    (row,) = await _rows(db)
    assert row.result[SENDING]["message_id"] == "<m1@test>" and row.result[SENDING]["attempt"] == 1
    with pinned(utcnow() + timedelta(seconds=61)):  # its lease ends
        assert await d.drain() == 0
    assert sent == []  # never sent a second time
    (row,) = await _rows(db)
    assert row.status == OutboxStatus.PARKED
    assert row.parked_reason is not None and row.parked_reason.startswith(UNCERTAIN)
    assert row.result["uncertain"]["message_id"] == "<m1@test>" and SENDING not in row.result
    # an operator who checked the mail server and found nothing releases it: sent once
    async with db.session() as s:
        assert await release(s, [row.id]) == 1
    assert await d.drain() == 1
    assert sent == [row.id]


async def test_a_send_that_times_out_after_the_mark_is_uncertain(db: Database, channel: str) -> None:
    hang = asyncio.Event()

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        assert await mark_sending(db, msg)
        await hang.wait()  # the data went out, the answer never comes
        return DeliveryResult.delivered()

    register_channel(channel, sender)
    await _enqueue(db, "mail", 1)
    d = OutboxDispatcher(db, channels=[channel], backoff=FAST, lease_seconds=0.5)
    try:
        assert await d.drain() == 0
    finally:
        hang.set()
    (row,) = await _rows(db)
    assert row.status == OutboxStatus.PARKED and row.parked_reason is not None
    assert row.parked_reason.startswith(UNCERTAIN) and "timeout" in row.parked_reason


async def test_a_mark_then_a_sure_failure_is_retried(db: Database, channel: str) -> None:
    calls = 0

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        nonlocal calls
        calls += 1
        assert await mark_sending(db, msg)
        if calls == 1:
            return DeliveryResult.retry("connection refused")  # nothing went out: the mark is cleared
        return DeliveryResult.delivered()

    register_channel(channel, sender)
    await _enqueue(db, "mail", 1)
    d = OutboxDispatcher(db, channels=[channel], backoff=FAST)
    assert await d.drain() == 0
    (row,) = await _rows(db)
    assert row.status == OutboxStatus.PENDING and SENDING not in (row.result or {})

    async def delivered() -> bool:
        await d.drain()
        return await _count(db, "mail", OutboxStatus.DELIVERED) == 1

    await wait_until(delivered, "retried and delivered")
    assert calls == 2


async def test_a_lost_lease_is_not_sent(db: Database, channel: str) -> None:
    await _enqueue(db, "mail", 1)
    register_channel(channel, lambda m: asyncio.sleep(0, DeliveryResult.delivered()))
    d = OutboxDispatcher(db, channels=[channel], lease_seconds=10)
    (claim,) = await d.claim()
    with pinned(utcnow() + timedelta(seconds=11)):
        (again,) = await d.claim()  # another process took it over after the lease
    assert again.attempts == claim.attempts + 1
    assert not await mark_sending(db, claim.message)  # the first one must not send
    assert await mark_sending(db, again.message)


async def test_shared_destination_is_one_lane(db: Database, channel: str) -> None:
    release_all = asyncio.Event()
    started = 0

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        nonlocal started
        started += 1
        await release_all.wait()
        return DeliveryResult.delivered()

    register_channel(channel, sender, shared_destination="smtp.example:25", concurrency=2)
    async with db.session() as s:  # destinations are recipients; they all go through one mail server
        for i in range(6):
            await enqueue(s, CHANNEL, f"driver{i}@example.test", f"r{i}", {"n": i})
    d = OutboxDispatcher(db, channels=[channel])
    try:
        await d.pump()
        await d.pump()
        assert started == 2
        release_all.set()

        async def done() -> bool:
            await d.pump()
            return sum(1 for r in await _rows(db) if r.status == OutboxStatus.DELIVERED) == 6

        await wait_until(done, "all six through the shared lane")
    finally:
        release_all.set()
        await d.aclose()


async def test_aclose_cancels_what_hangs(db: Database, channel: str) -> None:
    async def sender(msg: OutboxMessage) -> DeliveryResult:
        await asyncio.Event().wait()
        return DeliveryResult.delivered()

    register_channel(channel, sender)
    await _enqueue(db, "A", 2)
    d = OutboxDispatcher(db, channels=[channel], stop_grace=0.2)
    assert await d.pump() == 2
    await asyncio.wait_for(d.aclose(), timeout=5)
    assert await d.pump() == 0  # closed
    assert all(r.status == OutboxStatus.PENDING for r in await _rows(db))  # their leases bring them back
