"""OCPP worker processes: more than one core for the charger websockets (``EVHUB_OCPP_WORKERS``).

One Python process runs its event loop on one core; the OCPP listener is what needs more when thousands of
chargers send meter values. With ``EVHUB_OCPP_WORKERS=N`` (N > 1, PostgreSQL only) ``evhub serve`` runs the
whole hub in its main process and N - 1 extra processes that run only the OCPP listener, all bound to the same
port with ``SO_REUSEPORT`` so the kernel spreads new charger connections across them. A worker installs every
component (so the hooks the gateway calls — OCPI pushes, real-time authorization, receipts — are the same as in
the main process) but starts only the gateway: no HTTP app and no scheduled jobs, which stay in the main
process. What a worker runs is handed in by the assembly (``evhub.app`` passes its ``RunningHub`` in the
``"ocpp-worker"`` role), so this module imports no part of the hub. Commands from the API reach chargers on any worker through the gateway's LISTEN/NOTIFY router, as
between separate ``evhub serve`` processes.

The main process supervises its workers: a worker that dies is started again (after a back-off that grows
while it keeps dying), and on SIGTERM every worker is asked to stop gracefully (closing its chargers'
connections, committing what it accepted) before the main process stops. A worker whose main process
disappears without that (SIGKILL, a crash) notices within a second and stops the same graceful way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol

from evhub.gcpolicy import GcPolicy
from kernel.clock import CLOCK, pin_clock
from kernel.logs import configure
from kernel.settings import Settings
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

RESTART_BACKOFF = (1.0, 30.0)  # first and longest pause before a crashed worker is started again
STOP_TIMEOUT = 15.0
PARENT_CHECK_INTERVAL = 1.0  # how often a worker checks that its main process is still there


class WorkerHub(Protocol):
    """What a worker process runs: the hub in its OCPP-worker role (``evhub.app.RunningHub``)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


WorkerHubFactory = Callable[[Settings], WorkerHub]
"""Builds a worker's hub from its settings; it is sent to the spawned process, so it must pickle (a
module-level class or function, or a ``functools.partial`` of one)."""


def use_uvloop() -> bool:
    """Run asyncio on uvloop when it is installed (uvicorn[standard] brings it): the OCPP hot path is mostly
    event-loop work."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - always installed with uvicorn[standard]
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _worker_main(config: dict[str, Any], index: int, hub_factory: WorkerHubFactory) -> None:
    """Entry point of a worker process (spawned, so nothing is inherited but the arguments)."""
    settings = Settings(**config)
    if settings.clock_start is not None:  # the parent's pinned clock, as it read when spawning this worker
        pin_clock(settings.clock_start)
    configure(settings.log_level, settings.log_format)
    use_uvloop()
    asyncio.run(_run_worker(settings, index, hub_factory))


async def _run_worker(settings: Settings, index: int, hub_factory: WorkerHubFactory) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    orphan_watch = asyncio.create_task(_stop_when_orphaned(os.getppid(), stop), name="parent-watch")
    running = hub_factory(settings)
    await running.start()
    gc_policy = GcPolicy()
    gc_policy.start()
    log.info("OCPP worker %d started", index, extra={"fields": {"node": settings.node_name}})
    try:
        await stop.wait()
    finally:
        orphan_watch.cancel()
        await gc_policy.stop()
        await running.stop()


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """Stop this worker gracefully when its main process is gone (killed with SIGKILL, say): an orphaned
    worker would keep holding the OCPP port and its chargers for a hub that no longer supervises it."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
    log.error("the main evhub process (pid %d) is gone; stopping this OCPP worker", parent_pid)
    stop.set()


class OcppWorkers:
    """Starts, watches and stops the extra OCPP worker processes of one ``evhub serve``."""

    def __init__(self, settings: Settings, port: int, node_name: str, hub_factory: WorkerHubFactory) -> None:
        """``hub_factory`` builds what each worker runs (see :data:`WorkerHubFactory`)."""
        self.count = settings.ocpp_workers - 1
        # the workers bind the port the main process actually got, and name themselves after it
        self.config = settings.model_dump() | {"ocpp_port": port}
        self.node_name = node_name
        self.hub_factory = hub_factory
        self.ctx = mp.get_context("spawn")
        self.procs: dict[int, Any] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    def _spawn(self, index: int) -> None:
        config = self.config | {"node_name": f"{self.node_name}/ocpp-{index}"}
        if CLOCK.pinned_start is not None:  # a pinned clock goes on in the worker from where it is now
            config["clock_start"] = utcnow()
        proc = self.ctx.Process(
            target=_worker_main,
            args=(config, index, self.hub_factory),
            name=f"evhub-ocpp-{index}",
            daemon=False,
        )
        proc.start()
        self.procs[index] = proc
        log.info("started OCPP worker %d (pid %s)", index, proc.pid)

    async def start(self) -> None:
        for index in range(1, self.count + 1):
            self._spawn(index)
        self._watch = asyncio.create_task(self._supervise(), name="ocpp-workers")

    async def _supervise(self) -> None:
        pause: dict[int, float] = {}
        started: dict[int, float] = {i: time.monotonic() for i in self.procs}
        while not self._stopping:
            await asyncio.sleep(0.5)
            for index, proc in list(self.procs.items()):
                if proc.is_alive() or self._stopping:
                    continue
                # a worker that ran for a while before dying starts again quickly; one that keeps dying waits
                lived = time.monotonic() - started.get(index, 0.0)
                wait = (
                    RESTART_BACKOFF[0] if lived > 60 else min(pause.get(index, 0.5) * 2, RESTART_BACKOFF[1])
                )
                pause[index] = wait
                log.error(
                    "OCPP worker %d exited with %s; starting it again in %.0f s", index, proc.exitcode, wait
                )
                await asyncio.sleep(wait)
                if self._stopping:
                    return
                self._spawn(index)
                started[index] = time.monotonic()

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for index, proc in self.procs.items():
            while proc.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.is_alive():
                log.warning("OCPP worker %d did not stop in time; killing it", index)
                proc.kill()
            proc.join(1)
        self.procs.clear()
