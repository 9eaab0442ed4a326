"""Pricing never holds the gateway's event loop (issue 15: "one session with an absurd span froze every charger
for 22 s"). The pure pricing runs in a worker thread, and the work of one session is bounded before anything
is loaded: a session beyond the bounds is refused (``failed``, the reason recorded), never silently lost.
Proved with a real websocket and without timing: the pure pricing step waits, in its thread, until another
charger's Heartbeat has been answered; on the event loop that wait could never end (the loop would be the one
waiting), so the step would give up and the test fail."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

import tariffs.cdr_builder as cdr_builder
from cpo_gateway.server import Gateway
from evhub import provisioning as prov
from kernel.clock import pin_clock
from kernel.db.engine import Database
from kernel.models import ChargePoint, ChargingSession, MeterValue, PricingState, SessionStatus
from kernel.plausibility import Limits
from kernel.timeutil import utcnow
from tariffs.rating import rate_pending
from tests.gateway.conftest import Seed, open_client

GIVE_UP = 60.0
"""How long the pure step waits for the Heartbeat (s) before it gives up: far past any loaded CI box's round
trip; reached only when the step holds the loop (then the Heartbeat cannot be answered at all)."""

TARIFF = {
    "country_code": "NL",
    "party_id": "ABC",
    "id": "DEFAULT",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.40, "step_size": 1}],
            "restrictions": {"start_time": "08:00", "end_time": "20:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]},
    ],
    "last_updated": "2026-01-01T00:00:00Z",
}


async def _session(db: Database, seed: Seed, span: timedelta, readings: int) -> int:
    """An ended session of ``span`` an operator released to be billed as it is (past the plausibility
    checks), with ``readings`` energy register readings spread over it."""
    start = utcnow() + timedelta(seconds=1)  # after the tariff version was stored (the publication rule)
    end = start + span
    async with db.session() as s:
        cp = await s.scalar(select(ChargePoint.id).where(ChargePoint.identity == "CP16"))
        session = ChargingSession(
            session_uid=str(uuid.uuid4()), charge_point_id=cp, transaction_id=str(uuid.uuid4()),
            cpo_id=seed.cpo_id, location_id=seed.location_id, evse_pk=seed.evse_pks[0],
            status=SessionStatus.COMPLETED, start_time=start, end_time=end, meter_start_wh=Decimal(0),
            meter_stop_wh=Decimal(readings), energy_wh=Decimal(readings),
            pricing_state=PricingState.PENDING, data={"released": {"accepted": True}}, last_updated=start,
        )  # fmt: skip
        s.add(session)
        await s.flush()
        step = span / max(readings, 1)
        if readings:
            await s.execute(
                insert(MeterValue),
                [
                    {"session_id": session.id, "timestamp": start + step * n, "value": Decimal(n)}
                    for n in range(1, readings + 1)
                ],
            )
        return session.id


def _past_the_sessions() -> None:
    """Move the hub's clock 1.1 s on, past the sessions' start (no waiting: the clock is injectable)."""
    pin_clock(utcnow() + timedelta(seconds=1.1))


class _PricingGate:
    """Wraps the pure pricing step: call ``n`` records its thread, says it is waiting, and waits until
    :meth:`answered` ``(n)`` (a Heartbeat was answered while it ran) or :data:`GIVE_UP`; ``held`` counts the
    calls that gave up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.held = 0
        self.waiting = 0
        """The number of the call waiting now (0: none yet)."""
        self.threads: set[int] = set()
        self._go: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        step = cdr_builder.price_periods

        def gated(*args: object, **kwargs: object) -> object:
            with self._lock:
                self.calls += 1
                number = self.calls
                self._go[number] = threading.Event()
                self.threads.add(threading.get_ident())
                self.waiting = number
            if not self._go[number].wait(GIVE_UP):
                self.held += 1
            return step(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(cdr_builder, "price_periods", gated)

    def answered(self, number: int) -> None:
        self._go[number].set()


async def _heartbeats_while(
    gateway: Gateway, gate: _PricingGate, start: Callable[[], Awaitable[int]]
) -> tuple[asyncio.Task[int], int]:
    """Another charger connects, then ``start``'s work runs; whenever a pricing step waits in the gate, the
    charger sends a Heartbeat and, once it is answered, lets that step go on. Returns the work's task and how
    many steps a Heartbeat was answered for while they ran. The charger is connected first: its round trips, not
    its upgrade, are what is proved (on a loaded CI box an upgrade queued behind the pricing's reads could get
    503)."""
    client = await open_client(gateway, "CP201", "ocpp2.0.1")
    work = asyncio.create_task(start())
    released = 0
    try:
        while not work.done():
            waiting = gate.waiting
            if waiting > released:
                await client.ok("Heartbeat", {})
                for number in range(released + 1, waiting + 1):  # in parallel on PostgreSQL
                    gate.answered(number)
                released = waiting
            await asyncio.sleep(0.005)
    finally:
        await client.close()
    return work, released


async def _state(db: Database, session_id: int) -> ChargingSession:
    async with db.session() as s:
        row = await s.get(ChargingSession, session_id)
        assert row is not None
        return row


async def test_an_absurd_session_is_refused_with_its_reason_and_holds_nobody(
    db: Database, seeded: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.session() as s:
        await prov.import_tariff(s, TARIFF)
    absurd = await _session(db, seeded, timedelta(days=365 * 30), 20)
    _past_the_sessions()
    gate = _PricingGate(monkeypatch)
    assert await rate_pending(db, (), limits=Limits()) == 0
    row = await _state(db, absurd)
    assert row.pricing_state == PricingState.FAILED and "too much to price" in (row.pricing_error or "")
    assert gate.calls == 0  # refused before its readings were loaded or priced: nobody was held


async def test_heavy_pricing_runs_off_the_loop(
    gateway: Gateway, db: Database, seeded: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions within the bounds but heavy to price (a long span cut at every daily price change, many
    readings) are priced, each in a worker thread, while the chargers are answered."""
    async with db.session() as s:
        await prov.import_tariff(s, TARIFF)
    ids = [await _session(db, seeded, timedelta(days=80), 20_000) for _ in range(2)]
    _past_the_sessions()
    gate = _PricingGate(monkeypatch)
    work, released = await _heartbeats_while(gateway, gate, lambda: rate_pending(db, (), limits=Limits()))
    assert await work == 2
    for sid in ids:
        assert (await _state(db, sid)).pricing_state == PricingState.PRICED
    assert gate.calls == 2 and gate.held == 0 and released == 2, (gate.calls, gate.held, released)
    assert threading.get_ident() not in gate.threads  # each step ran in a worker thread, not the loop's


async def test_a_backlog_is_priced_in_one_run(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """Ended sessions waiting together are all priced by one run (in parallel on PostgreSQL)."""
    async with db.session() as s:
        await prov.import_tariff(s, TARIFF)
    ids = [await _session(db, seeded, timedelta(hours=2), 24) for _ in range(24)]
    _past_the_sessions()
    assert await rate_pending(db, (), limits=Limits()) == len(ids)
    for sid in ids:
        assert (await _state(db, sid)).pricing_state == PricingState.PRICED
