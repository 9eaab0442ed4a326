"""Simulated charge points (OCPP 1.6 / 2.0.1) for the demo, tests and benchmarks.

In-process (async)::

    fleet = ChargerFleet(specs, "ws://127.0.0.1:9000/ocpp", acceleration=600, sessions_per_charger=2)
    await fleet.start()
    await fleet.wait_sessions(10, timeout=120)   # K sessions completed across the fleet
    await fleet.stop()

From the CLI (blocking)::

    simulators.chargepoints.run(count=50, url="ws://127.0.0.1:9000/ocpp", version="1.6",
                                password="...", acceleration=60, duration=600)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import datetime

from simulators.chargepoints.charger import ChargerSpec, SimClock, SimStats, SimulatedCharger

__all__ = ["ChargerFleet", "ChargerSpec", "SimStats", "SimulatedCharger", "make_specs", "run", "run_async"]


def make_specs(
    count: int,
    *,
    prefix: str = "SIM",
    version: str = "1.6",
    password: str | Sequence[str] = "sim-password",
    tokens: Sequence[str] = ("AABBCC01",),
    start: int = 1,
) -> list[ChargerSpec]:
    """``count`` specs named ``{prefix}{n:05d}``; ``version`` "1.6", "2.0.1" or "mixed" (alternating);
    ``password`` one for all or one per charger."""
    specs = []
    for i in range(count):
        n = start + i
        ver = ("1.6" if i % 2 == 0 else "2.0.1") if version == "mixed" else version
        pw = password if isinstance(password, str) else password[i]
        specs.append(ChargerSpec(identity=f"{prefix}{n:05d}", password=pw, version=ver, tokens=list(tokens)))
    return specs


class ChargerFleet:
    """N simulated chargers against one central system URL (``ws[s]://host:port/ocpp``)."""

    def __init__(
        self,
        specs: Sequence[ChargerSpec],
        url: str,
        *,
        acceleration: float = 1.0,
        sessions_per_charger: int | None = None,
        heartbeat_s: float = 300.0,
        start_time: datetime | None = None,
        ssl: object = None,
        record_latency: bool = False,
    ) -> None:
        self.clock = SimClock(acceleration, start_time)
        self.chargers = [
            SimulatedCharger(s, url, self.clock, max_sessions=sessions_per_charger, ssl=ssl,
                             record_latency=record_latency)
            for s in specs
        ]  # fmt: skip
        self.heartbeat_s = heartbeat_s
        self.tasks: list[asyncio.Task[SimStats]] = []

    async def start(self, ramp_s: float = 0.0) -> None:
        """Start every charger (spread over ``ramp_s`` wall-clock seconds)."""
        for i, charger in enumerate(self.chargers):
            self.tasks.append(asyncio.create_task(charger.run(self.heartbeat_s)))
            if ramp_s and i % 50 == 49:
                await asyncio.sleep(ramp_s * 50 / len(self.chargers))

    @property
    def sessions_completed(self) -> int:
        return sum(c.stats.sessions_completed for c in self.chargers)

    @property
    def connected(self) -> int:
        return sum(1 for c in self.chargers if c.online.is_set())

    async def wait_sessions(self, k: int, timeout: float = 300.0) -> int:
        """Wait until ``k`` sessions completed across the fleet; returns the count (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        while self.sessions_completed < k:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.sessions_completed} of {k} sessions completed")
            if self.tasks and all(t.done() for t in self.tasks):
                break
            await asyncio.sleep(0.05)
        return self.sessions_completed

    async def wait_connected(self, n: int | None = None, timeout: float = 60.0) -> None:
        want = len(self.chargers) if n is None else n
        deadline = time.monotonic() + timeout
        while self.connected < want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.connected} of {want} chargers connected")
            await asyncio.sleep(0.05)

    async def stop(self) -> list[SimStats]:
        for charger in self.chargers:
            charger.stop()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return [c.stats for c in self.chargers]


async def run_async(
    count: int,
    url: str,
    *,
    version: str = "1.6",
    password: str | Sequence[str] = "sim-password",
    tokens: Sequence[str] = ("AABBCC01",),
    prefix: str = "SIM",
    acceleration: float = 60.0,
    duration: float | None = None,
    sessions: int | None = None,
) -> dict[str, int]:
    """Run a fleet for ``duration`` wall-clock seconds (or until each charger did ``sessions``)."""
    fleet = ChargerFleet(
        make_specs(count, prefix=prefix, version=version, password=password, tokens=tokens),
        url,
        acceleration=acceleration,
        sessions_per_charger=sessions,
    )
    await fleet.start(ramp_s=min(10.0, count / 100))
    try:
        if duration is not None:
            await asyncio.sleep(duration)
        else:
            await asyncio.gather(*fleet.tasks, return_exceptions=True)
    finally:
        stats = await fleet.stop()
    return {
        "chargers": count,
        "sessions_completed": sum(s.sessions_completed for s in stats),
        "meter_values_sent": sum(s.meter_values_sent for s in stats),
        "connects": sum(s.connects for s in stats),
        "errors": sum(s.errors for s in stats),
    }


def run(
    count: int,
    url: str,
    version: str = "1.6",
    password: str | Sequence[str] = "sim-password",
    tokens: Sequence[str] = ("AABBCC01",),
    prefix: str = "SIM",
    acceleration: float = 60.0,
    duration: float | None = None,
    sessions: int | None = None,
) -> dict[str, int]:
    """Blocking entry point for ``evhub simulate chargers`` (Ctrl-C stops)."""
    return asyncio.run(
        run_async(count, url, version=version, password=password, tokens=tokens, prefix=prefix,
                  acceleration=acceleration, duration=duration, sessions=sessions)
    )  # fmt: skip
