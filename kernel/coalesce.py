"""Coalescing of many small database calls into few batched ones (a reconnect storm's lookups and writes).

Ten thousand chargers reconnecting at once each need the same few statements (look the charger up, check its
remembered password, mark it online, store its boot data). One transaction each is ten thousand round trips
and ten thousand ORM sessions on one event loop. :class:`Coalescer` queues each caller's item; a flush takes
everything queued so far (up to ``max_batch``) and hands it to one batched call, at most ``concurrency``
flushes at a time. A storm thus costs a few round trips per few hundred chargers; a lone caller waits for no
timer (its flush starts at once). Every caller of a batch gets its own result, or the batch's exception (a
database that is down fails every caller in the batch, each of which answers for itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchCall = Callable[[list[T]], Awaitable[Sequence[R]]]
"""Given the queued items, their results in the same order."""


class Coalescer(Generic[T, R]):
    """``await submit(item)`` -> the item's result from one batched call shared with whoever else queued."""

    def __init__(self, call: BatchCall[T, R], *, max_batch: int = 500, concurrency: int = 2) -> None:
        self._call = call
        self.max_batch = max_batch
        self.concurrency = concurrency
        self._queued: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def backlog(self) -> int:
        """Items queued and not yet taken by a flush (admission control reads it)."""
        return len(self._queued)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        if self._flushing < self.concurrency:
            self._flushing += 1
            task = asyncio.create_task(self._flush_while_queued())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush_while_queued(self) -> None:
        try:
            await asyncio.sleep(0)  # let the callers of this loop iteration queue too
            while self._queued:
                batch = self._queued[: self.max_batch]
                del self._queued[: self.max_batch]
                live = [(item, fut) for item, fut in batch if not fut.cancelled()]
                if not live:
                    continue
                try:
                    results = await self._call([item for item, _ in live])
                except asyncio.CancelledError:  # shutting down: nobody waits forever
                    for _, fut in live + self._queued:
                        fut.cancel()
                    self._queued.clear()
                    raise
                except Exception as exc:  # handed to every caller of the batch
                    for _, fut in live:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(live, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._flushing -= 1
