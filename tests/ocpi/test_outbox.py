"""The generic outbox dispatcher: order per key, backoff, dedupe, parked messages, several dispatchers."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from sqlalchemy import select

from kernel.models import OutboxMessage, OutboxStatus
from kernel.outbox import (
    BackoffPolicy,
    DeliveryResult,
    OutboxDispatcher,
    enqueue,
    list_messages,
    outbox_stats,
    register_channel,
    retry_parked,
    unregister_channel,
)
from tests.ocpi._helpers import wait_until


def _dispatcher(db, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("backoff", BackoffPolicy(base=0.01, cap=0.05, jitter=0))
    return OutboxDispatcher(db, channels=["test"], **kw)


async def _drain(db, d: OutboxDispatcher) -> None:  # type: ignore[no-untyped-def]
    """Run the dispatcher until the test channel has nothing pending (retries wait for their backoff)."""

    async def drained() -> bool:
        await d.run_once()
        return (await outbox_stats(db, channel="test"))["pending"] == 0

    await wait_until(drained, "the test channel drained")


async def test_order_per_key_retries_and_exactly_once(db):
    delivered: dict[str, list[int]] = defaultdict(list)
    failures = {"k1": 3}  # the first 3 attempts on k1 fail

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        key = msg.ordering_key
        if failures.get(key, 0) > 0:
            failures[key] -= 1
            return DeliveryResult.retry("503")
        delivered[key].append(msg.payload["n"])
        return DeliveryResult.delivered(ack=True)

    register_channel("test", sender)
    try:
        async with db.session() as s:
            for n in range(5):
                for key in ("k1", "k2"):
                    await enqueue(s, "test", "dest", key, {"n": n}, dedupe_key=f"{key}-{n}")
            assert await enqueue(s, "test", "dest", "k1", {"n": 99}, dedupe_key="k1-0") is None
        d = _dispatcher(db)
        await _drain(db, d)
        assert delivered == {"k1": [0, 1, 2, 3, 4], "k2": [0, 1, 2, 3, 4]}
        rows = await list_messages(db, channel="test")
        assert len(rows) == 10 and {r.status for r in rows} == {"delivered"}
        first_k1 = next(r for r in rows if r.ordering_key == "k1" and r.id == min(x.id for x in rows))
        assert first_k1.attempts == 4
        assert await d.run_once() == 0  # nothing is delivered twice
    finally:
        unregister_channel("test")


async def test_parked_after_refusal_or_max_attempts(db):
    async def sender(msg: OutboxMessage) -> DeliveryResult:
        if msg.payload.get("bad"):
            return DeliveryResult.give_up("HTTP 400")
        raise RuntimeError("boom")  # a crashing sender counts as a transient failure

    register_channel("test", sender)
    try:
        async with db.session() as s:
            await enqueue(s, "test", "d", "a", {"bad": True})
            await enqueue(s, "test", "d", "b", {"bad": False})
        d = _dispatcher(db, max_attempts=3)
        await _drain(db, d)
        rows = sorted(await list_messages(db, channel="test"), key=lambda r: r.id)
        assert [(r.status, r.attempts) for r in rows] == [("parked", 1), ("parked", 3)]
        assert rows[0].parked_reason == "refused: HTTP 400"
        assert rows[1].parked_reason.startswith("gave up after 3 attempts over ")
        assert rows[1].parked_reason.endswith(": RuntimeError: boom") and "boom" in rows[1].last_error
        assert (await outbox_stats(db, channel="test"))["parked"] == 2
        assert await retry_parked(db) == 2
        assert (await outbox_stats(db, channel="test"))["pending"] == 2
    finally:
        unregister_channel("test")


async def test_a_parked_message_keeps_blocking_its_key(db):
    """A later message of an object never overtakes one that was parked (issue 13: EVSE PATCHes reached a
    partner that never got the location's PUT); released, the parked one goes first."""
    sent: list[int] = []
    refuse = {"on": True}

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        if msg.payload["n"] == 0 and refuse["on"]:
            return DeliveryResult.give_up("HTTP 400")
        sent.append(msg.payload["n"])
        return DeliveryResult.delivered()

    register_channel("test", sender)
    try:
        async with db.session() as s:
            for n in range(3):
                await enqueue(s, "test", "d", "obj", {"n": n})
            await enqueue(s, "test", "d", "other", {"n": 10})
        d = _dispatcher(db)
        for _ in range(5):
            await d.run_once()
        assert sent == [10]
        stats = await outbox_stats(db, channel="test")
        assert (stats["parked"], stats["pending"]) == (1, 2)
        refuse["on"] = False
        assert await retry_parked(db) == 1
        await _drain(db, d)
        assert sent == [10, 0, 1, 2]
    finally:
        unregister_channel("test")


async def test_several_dispatchers_never_deliver_twice(db):
    seen: list[tuple[str, int]] = []
    in_flight: set[str] = set()
    overlaps = []

    async def sender(msg: OutboxMessage) -> DeliveryResult:
        if msg.ordering_key in in_flight:
            overlaps.append(msg.ordering_key)
        in_flight.add(msg.ordering_key)
        await asyncio.sleep(0.005)
        in_flight.discard(msg.ordering_key)
        seen.append((msg.ordering_key, msg.payload["n"]))
        return DeliveryResult.delivered()

    register_channel("test", sender)
    try:
        async with db.session() as s:
            for n in range(10):
                for key in ("a", "b", "c"):
                    await enqueue(s, "test", "d", key, {"n": n})
        from kernel.db.engine import Database

        dbs = [Database(db.url) for _ in range(3)]  # separate engines, like separate processes
        try:
            dispatchers = [_dispatcher(x) for x in dbs]

            async def work(d: OutboxDispatcher) -> None:
                for _ in range(200):
                    await d.run_once()
                    if (await outbox_stats(db, channel="test"))["pending"] == 0:
                        return
                    await asyncio.sleep(0.005)

            await asyncio.gather(*(work(d) for d in dispatchers))
        finally:
            for x in dbs:
                await x.dispose()
        assert len(seen) == 30 and not overlaps
        for key in ("a", "b", "c"):
            assert [n for k, n in seen if k == key] == list(range(10))
        async with db.session() as s:
            attempts = (await s.scalars(select(OutboxMessage.attempts))).all()
            statuses = set((await s.scalars(select(OutboxMessage.status))).all())
        assert statuses == {OutboxStatus.DELIVERED} and set(attempts) == {1}
    finally:
        unregister_channel("test")
