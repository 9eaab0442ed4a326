"""Garbage-collector policy for long-running hub processes (``evhub serve`` and its OCPP workers).

Python's full (generation 2) collection walks every tracked object. A gateway holding 10,000 charger
connections has a few million of them, and a full collection then stops the event loop for about a second
(measured: 0.7-1.3 s on the benchmark machine), which every charger waiting for an answer sees as latency.
Most of those objects live as long as the process or the connection. So every ``freeze_every`` seconds the
process moves everything it tracks into the permanent generation (:func:`gc.freeze`), and ordinary collections
only look at what is newer. Frozen objects are still freed by reference counting the moment nobody uses
them; only reference cycles that became garbage after being frozen wait, until the full collection that runs
once every ``full_every`` seconds (one pause per hour instead of several per minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time

log = logging.getLogger(__name__)


class GcPolicy:
    def __init__(self, freeze_every: float = 30.0, full_every: float = 3600.0) -> None:
        self.freeze_every = freeze_every
        self.full_every = full_every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.collect()  # what start-up left behind, once, before it is frozen
        gc.freeze()
        self._task = asyncio.create_task(self._run(), name="gc-policy")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        gc.unfreeze()

    async def _run(self) -> None:
        last_full = time.monotonic()
        while True:
            await asyncio.sleep(self.freeze_every)
            if time.monotonic() - last_full >= self.full_every:
                gc.unfreeze()
                started = time.perf_counter()
                found = gc.collect()
                last_full = time.monotonic()
                log.info(
                    "full garbage collection: %d objects in %.0f ms",
                    found,
                    (time.perf_counter() - started) * 1e3,
                )
            gc.freeze()
