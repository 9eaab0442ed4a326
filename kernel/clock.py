"""The hub's one clock: real UTC time by default, or pinned to a start instant from which it runs on.

Every calendar decision (the current month of the portal, the settlement period, "now" in a CDR) reads
:func:`kernel.timeutil.utcnow`, which asks :data:`CLOCK`. Pinning sets the calendar without freezing time: a
pinned clock returns ``start + monotonic time elapsed since pinning``, so timeouts, leases and retry delays
still pass at the real rate while the date is the one chosen. Tests pin it (``with pinned(...)``), the demo
pins it to its simulated evening, and ``EVHUB_CLOCK_START`` pins a process (``evhub serve``, ``evhub demo``)
through :mod:`kernel.settings`.

Durations are not the clock's business: code measuring how long something took keeps ``time.monotonic()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class _Pin:
    start: datetime
    monotonic_at_pin: float


class Clock:
    """Real UTC time, or a pinned start running on at the real rate."""

    def __init__(self) -> None:
        self._pin: _Pin | None = None

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        pin = self._pin
        if pin is None:
            return datetime.now(UTC)
        return pin.start + timedelta(seconds=time.monotonic() - pin.monotonic_at_pin)

    @property
    def pinned_start(self) -> datetime | None:
        """The instant the clock was pinned to, or None when it follows the real time."""
        return self._pin.start if self._pin else None

    def pin(self, start: datetime) -> None:
        """From now on the clock reads ``start`` plus the time elapsed since this call."""
        if start.tzinfo is None or start.tzinfo.utcoffset(start) is None:
            raise ValueError(f"naive datetime {start.isoformat()} where an aware one is required")
        self._pin = _Pin(start.astimezone(UTC), time.monotonic())

    def unpin(self) -> None:
        """Back to the real time."""
        self._pin = None

    @contextmanager
    def pinned(self, start: datetime) -> Iterator[Clock]:
        """Pin for the duration of a ``with`` block, then restore whatever was before (real or pinned)."""
        before = self._pin
        self.pin(start)
        try:
            yield self
        finally:
            self._pin = before


CLOCK = Clock()


def pin_clock(start: datetime) -> None:
    """Pin the process clock (see :meth:`Clock.pin`). Pinning again to the same start keeps it running on."""
    if CLOCK.pinned_start != start:
        CLOCK.pin(start)


def pinned(start: datetime) -> AbstractContextManager[Clock]:
    """``with pinned(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)): ...`` — the process clock for a block."""
    return CLOCK.pinned(start)
