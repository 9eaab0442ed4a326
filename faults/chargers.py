"""Simulated chargers that remember what they sent and what the hub acknowledged (OCPP 1.6).

:class:`CountingCharger` is :class:`simulators.chargepoints.SimulatedCharger` (its sessions, offline queue and
reconnects) with a ledger: every StartTransaction, periodic MeterValues reading and StopTransaction it sent,
and the ones the hub answered. Like a real charger it retries a transaction message the hub answered with a
CALLERROR (the hub could not store it, e.g. its database is down) instead of dropping it. ``wind_down()`` lets
running sessions finish and starts no new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.chargepoints.charger import ChargerSpec, SimClock, SimulatedCharger

RETRY_S = 1.0
MAX_RETRIES = 600


def parse_stamp(value: str) -> datetime:
    """An OCPP timestamp as an aware UTC datetime (milliseconds, as the simulator sends them)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class Ledger:
    """One charger's view: start stamps sent / acknowledged (with the hub's transactionId), readings and stops."""

    starts_sent: set[datetime] = field(default_factory=set)
    starts_acked: dict[datetime, str] = field(default_factory=dict)  # start stamp -> transactionId
    readings_sent: set[tuple[str, datetime]] = field(default_factory=set)  # (transactionId, stamp)
    readings_acked: set[tuple[str, datetime]] = field(default_factory=set)
    stops_sent: set[str] = field(default_factory=set)
    stops_acked: set[str] = field(default_factory=set)
    call_errors: int = 0


def _periodic(payload: dict[str, Any]) -> list[datetime]:
    out = []
    for mv in payload.get("meterValue", []):
        if any(
            sv.get("context", "Sample.Periodic") == "Sample.Periodic" for sv in mv.get("sampledValue", [])
        ):
            out.append(parse_stamp(mv["timestamp"]))
    return out


class CountingCharger(SimulatedCharger):
    def __init__(self, spec: ChargerSpec, url: str, clock: SimClock) -> None:
        super().__init__(spec, url, clock)
        self.ledger = Ledger()
        self.winding_down = False

    def wind_down(self) -> None:
        self.winding_down = True

    async def _link(self) -> None:
        """The simulator's link, kept alive through what it does not catch itself: an upgrade the hub closed
        without an answer (``InvalidMessage``) or any other handshake error ends its loop; a charger tries again."""
        backoff = 1.0
        while not self.done.is_set():
            try:
                await super()._link()
                return
            except Exception:
                self.stats.errors += 1
            await asyncio.sleep(backoff * (0.5 + self.rng.random()))
            backoff = min(backoff * 2, 30.0)

    async def _wait_online(self) -> bool:
        if self.winding_down:
            return False
        return await super()._wait_online()

    async def _call_now(self, action: str, payload: dict[str, Any], timeout: float = 30) -> Any:
        led = self.ledger
        for _ in range(MAX_RETRIES):
            if action == "StartTransaction":
                led.starts_sent.add(parse_stamp(payload["timestamp"]))
            elif action == "MeterValues":
                tx = str(payload.get("transactionId"))
                led.readings_sent.update((tx, at) for at in _periodic(payload))
            elif action == "StopTransaction":
                led.stops_sent.add(str(payload["transactionId"]))
            try:
                result = await super()._call_now(action, payload, timeout)
            except RuntimeError:  # a CALLERROR: the hub did not take it; a charger tries again
                led.call_errors += 1
                await asyncio.sleep(RETRY_S)
                if not self.online.is_set():
                    raise ConnectionError("link lost while retrying") from None
                continue
            if action == "StartTransaction" and isinstance(result, dict):
                led.starts_acked[parse_stamp(payload["timestamp"])] = str(result.get("transactionId"))
            elif action == "MeterValues":
                tx = str(payload.get("transactionId"))
                led.readings_acked.update((tx, at) for at in _periodic(payload))
            elif action == "StopTransaction":
                led.stops_acked.add(str(payload["transactionId"]))
            return result
        raise ConnectionError(f"{action} refused {MAX_RETRIES} times")


class Fleet:
    """N counting chargers on one event loop."""

    def __init__(self, specs: list[ChargerSpec], url: str, acceleration: float) -> None:
        # Simulated time starts now and runs ``acceleration`` x ahead (the hub is told to accept the skew, as the
        # demo does): tariffs stored at provisioning apply to every session.
        self.clock = SimClock(acceleration, start=datetime.now(UTC) + timedelta(seconds=5))
        self.chargers = [CountingCharger(s, url, self.clock) for s in specs]
        self.tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(c.run(heartbeat_s=3600)) for c in self.chargers]

    def online(self) -> int:
        return sum(1 for c in self.chargers if c.online.is_set())

    async def finish(self, timeout: float) -> int:
        """Wind down and wait until every charger's last session ended; returns how many did not."""
        for c in self.chargers:
            c.wind_down()
        done, pending = await asyncio.wait(self.tasks, timeout=timeout) if self.tasks else (set(), set())
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        return len(pending) + sum(1 for t in done if t.exception() is not None)
