"""The serve process's GC policy: what exists is frozen (ordinary collections skip it), and cyclic garbage among
frozen objects is still collected by the scheduled full collection."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

from evhub.gcpolicy import GcPolicy


class _Node:
    pass


async def _until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_frozen_cycles_wait_for_the_scheduled_full_collection() -> None:
    policy = GcPolicy(freeze_every=0.05, full_every=1.0)
    try:
        policy.start()
        frozen_at_start = gc.get_freeze_count()
        assert frozen_at_start > 0
        node = _Node()
        node.me = node  # type: ignore[attr-defined]  # a reference cycle: only the collector frees it
        probe = weakref.ref(node)
        del node
        await _until(lambda: gc.get_freeze_count() > frozen_at_start)  # a tick froze it
        gc.collect()
        assert probe() is not None  # ordinary collections skip frozen objects
        await _until(lambda: probe() is None)  # the full collection came
    finally:
        await policy.stop()
    assert gc.get_freeze_count() == 0
