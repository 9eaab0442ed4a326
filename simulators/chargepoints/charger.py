"""One simulated charge point speaking OCPP-J 1.6 or 2.0.1 over a real websocket.

It boots, reports connector status, and runs realistic sessions: a driver plugs in after a random idle time,
presents an RFID token (Authorize), charges along a power curve (constant power, tapering above 80 % state of
charge), reports the energy register every 60 simulated seconds, and unplugs. Simulated time runs
``acceleration`` times faster than the wall clock (timestamps on the wire are simulated time).

Runs are reproducible: each connector draws from its own random generator (seeded from the charger's identity
and the connector number), meters its own energy register, and keeps its own simulated timeline, which advances
by exactly the idle times and meter intervals it sleeps (not by how long the hub took to answer). So the same
specs and start time give the same sessions, energies and timestamps on every run, however the event loop
interleaves the chargers.

Flaky links are part of the model: on a lost connection it reconnects with exponential backoff and jitter,
and transaction messages produced while offline are queued and delivered in order after reconnecting.
It answers the central system's commands (remote start/stop, reset, configuration, ...) with plausible
replies.

A charger whose spec has a ``meter`` (:class:`simulators.signing_meter.SigningMeter`) also signs its register at
each Transaction.Begin and Transaction.End, next to the plain value: 1.6 a ``format: SignedData`` sampled value
in the same meterValue (the Begin in a MeterValues right after StartTransaction, the End in StopTransaction's
transactionData), 2.0.1 the ``signedMeterValue`` of the Started and Ended events' register value.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import itertools
import json
import logging
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from kernel.timeutil import utcnow
from simulators.chargepoints import frames
from simulators.signing_meter import BEGIN, END, SigningMeter

log = logging.getLogger(__name__)

TRANSACTION_ACTIONS = {"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"}


@dataclass
class ChargerSpec:
    """What one simulated charger is."""

    identity: str
    password: str
    version: str = "1.6"  # "1.6" or "2.0.1"
    tokens: list[str] = field(default_factory=lambda: ["AABBCC01"])
    connectors: int = 1
    max_power_w: float = 11000.0
    meter_interval_s: int = 60  # simulated seconds between MeterValues
    idle_s: tuple[float, float] = (300.0, 1800.0)  # simulated idle time between sessions
    energy_wh: tuple[float, float] = (5000.0, 30000.0)  # energy a driver wants per session
    meter: SigningMeter | None = None  # signs the Begin and End registers (None: plain values only)


@dataclass
class SimStats:
    sessions_started: int = 0
    sessions_completed: int = 0
    meter_values_sent: int = 0
    connects: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


class SimClock:
    """Simulated time: ``start`` plus the wall time elapsed times ``acceleration`` ...

    ... except inside a timeline (:meth:`timeline`, one per connector), where it is ``start`` plus exactly the
    simulated seconds that timeline slept: deterministic, whatever the latency of the messages in between.
    """

    def __init__(self, acceleration: float, start: datetime | None = None) -> None:
        self.acceleration = acceleration
        self.start = start or utcnow()
        self.mono = time.monotonic()
        self._elapsed: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
            "sim_elapsed", default=None
        )

    def timeline(self) -> None:
        """Give the current task its own timeline, starting at ``start`` (call first thing in the task)."""
        self._elapsed.set([0.0])

    def now(self) -> datetime:
        elapsed = self._elapsed.get()
        if elapsed is not None:
            return self.start + timedelta(seconds=elapsed[0])
        return self.start + timedelta(seconds=(time.monotonic() - self.mono) * self.acceleration)

    def advance(self, sim_seconds: float) -> None:
        """Move the current timeline on (a no-op outside one)."""
        elapsed = self._elapsed.get()
        if elapsed is not None:
            elapsed[0] += max(0.0, sim_seconds)

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds / self.acceleration))
        self.advance(sim_seconds)


class SimulatedCharger:
    def __init__(
        self,
        spec: ChargerSpec,
        url: str,
        clock: SimClock,
        *,
        max_sessions: int | None = None,
        seed: int | None = None,
        ssl: Any = None,
        record_latency: bool = False,
    ) -> None:
        self.spec = spec
        self.url = url.rstrip("/") + "/" + spec.identity
        self.clock = clock
        self.max_sessions = max_sessions
        self.seed: int | str = seed if seed is not None else spec.identity
        self.rng = random.Random(self.seed)  # the link's reconnect jitter; each connector has its own
        self.ssl = ssl
        self.record_latency = record_latency
        self.stats = SimStats()
        self.ws: Any = None
        self.online = asyncio.Event()
        self.outbox: deque[tuple[str, dict[str, Any], asyncio.Future[Any] | None]] = deque()
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.meter_wh = {c: float(self.rng.randint(0, 5_000_000)) for c in range(1, spec.connectors + 1)}
        self.tx_seq = itertools.count(1)
        self.seq_no = 0
        self.remote_starts: asyncio.Queue[str] = asyncio.Queue()
        self.stop_requested: set[str] = set()
        self.done = asyncio.Event()
        self.drain_lock = asyncio.Lock()
        self.bg: set[asyncio.Task[Any]] = set()

    # -- wire -----------------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.spec.identity}:{self.spec.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _link(self) -> None:
        """Keep a connection up: connect, boot, flush the offline queue, read; reconnect with backoff."""
        backoff = 1.0
        while not self.done.is_set():
            try:
                async with connect(
                    self.url,
                    subprotocols=[Subprotocol("ocpp" + self.spec.version)],
                    additional_headers=self._headers(),
                    ssl=self.ssl,
                    open_timeout=30,
                    ping_interval=None,
                ) as ws:
                    self.ws = ws
                    self.stats.connects += 1
                    backoff = 1.0
                    reader = asyncio.create_task(self._read(ws))
                    try:
                        await self._boot()
                        self.online.set()
                        await self._drain()
                        await reader
                    finally:
                        self.online.clear()
                        reader.cancel()
                        for fut in self.pending.values():
                            if not fut.done():
                                fut.set_exception(ConnectionError("link lost"))
                        self.pending.clear()
            except InvalidStatus as exc:
                log.error("%s refused: HTTP %s", self.spec.identity, exc.response.status_code)
                self.stats.errors += 1
                if exc.response.status_code in (401, 403, 404):
                    self.done.set()
                    return
                if exc.response.status_code == 503:  # admission control: come back when told, with jitter
                    retry_after = exc.response.headers.get("Retry-After", "")
                    if retry_after.isascii() and retry_after.isdigit():
                        await asyncio.sleep(min(float(retry_after), 300.0) * (1 + 0.2 * self.rng.random()))
                        continue
            except (OSError, ConnectionClosed, TimeoutError, ConnectionError, InvalidHandshake):
                self.stats.errors += 1  # InvalidHandshake: e.g. an upgrade closed without an HTTP answer
            if self.done.is_set():
                return
            await asyncio.sleep(backoff * (0.5 + self.rng.random()))
            backoff = min(backoff * 2, 60.0)

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                msg = json.loads(frame)
                if msg[0] == 2:
                    await ws.send(json.dumps([3, msg[1], self._answer(msg[2], msg[3])]))
                elif msg[0] in (3, 4):
                    fut = self.pending.pop(msg[1], None)
                    if fut is not None and not fut.done():
                        if msg[0] == 3:
                            fut.set_result(msg[2])
                        else:
                            fut.set_exception(RuntimeError(f"{msg[2]}: {msg[3]}"))

    async def _call_now(self, action: str, payload: dict[str, Any], timeout: float = 30) -> Any:
        uid = f"{self.spec.identity[-6:]}-{next(self.ids)}"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[uid] = fut
        t0 = time.perf_counter()
        await self.ws.send(json.dumps([2, uid, action, payload]))
        result = await asyncio.wait_for(fut, timeout)
        if self.record_latency and action in ("MeterValues", "TransactionEvent"):
            self.stats.latencies.append(time.perf_counter() - t0)
        return result

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        """Send when online; transaction messages produced offline wait in the queue, in order."""
        while True:
            if not self.online.is_set() or self.outbox:
                if action not in TRANSACTION_ACTIONS:
                    await self.online.wait()
                    with contextlib.suppress(ConnectionError, ConnectionClosed, TimeoutError):
                        return await self._call_now(action, payload)
                    continue
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self.outbox.append((action, payload, fut))
                await self._drain()
                return await fut
            try:
                return await self._call_now(action, payload)
            except (ConnectionError, ConnectionClosed, TimeoutError):
                if action not in TRANSACTION_ACTIONS:
                    continue
                fut = asyncio.get_running_loop().create_future()
                self.outbox.appendleft((action, payload, fut))
                await self._drain()
                return await fut

    def enqueue(self, action: str, payload: dict[str, Any]) -> None:
        """Queue a transaction message without waiting for its answer (sent in order, kept while offline)."""
        self.outbox.append((action, payload, None))
        if self.online.is_set() and not self.drain_lock.locked():
            task = asyncio.get_running_loop().create_task(self._drain())
            self.bg.add(task)
            task.add_done_callback(self.bg.discard)

    async def _drain(self) -> None:
        async with self.drain_lock:
            await self._drain_locked()

    async def _drain_locked(self) -> None:
        if not self.online.is_set():
            return
        while self.outbox and self.online.is_set():
            action, payload, fut = self.outbox[0]
            try:
                result = await self._call_now(action, payload)
            except (ConnectionError, ConnectionClosed, TimeoutError):
                return
            self.outbox.popleft()
            if fut is not None and not fut.done():
                fut.set_result(result)

    # -- protocol -------------------------------------------------------------------------------------------

    async def _boot(self) -> None:
        payload: dict[str, Any]
        if self.spec.version == "1.6":
            payload = {"chargePointVendor": "evhub-sim", "chargePointModel": "SimAC22",
                       "chargePointSerialNumber": self.spec.identity, "firmwareVersion": "1.0.0"}  # fmt: skip
        else:
            payload = {"reason": "PowerUp", "chargingStation": {"model": "SimAC22", "vendorName": "evhub-sim",
                       "serialNumber": self.spec.identity, "firmwareVersion": "1.0.0"}}  # fmt: skip
        while True:  # Pending (the hub past capacity, or not yet accepted): boot again after its interval
            answer = await self._call_now("BootNotification", payload)
            if answer.get("status") == "Accepted" or self.done.is_set():
                break
            interval = float(answer.get("interval") or 10)
            await asyncio.sleep(min(interval, 300.0) * (0.8 + 0.4 * self.rng.random()))
        for c in range(1, self.spec.connectors + 1):
            await self._call_now("StatusNotification", self._status(c, "Available"))

    def _status(self, connector: int, status: str) -> dict[str, Any]:
        return frames.status(self.spec.version, self.clock.now(), connector, status)

    def _answer(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action in ("RemoteStartTransaction", "RequestStartTransaction"):
            tag = payload.get("idTag") or payload.get("idToken", {}).get("idToken", "")
            self.remote_starts.put_nowait(tag)
            return {"status": "Accepted"}
        if action in ("RemoteStopTransaction", "RequestStopTransaction"):
            self.stop_requested.add(str(payload.get("transactionId")))
            return {"status": "Accepted"}
        if action == "GetConfiguration":
            return {"configurationKey": [{"key": "MeterValueSampleInterval", "readonly": False,
                                          "value": str(self.spec.meter_interval_s)}]}  # fmt: skip
        if action == "GetVariables":
            return {"getVariableResult": [{"attributeStatus": "UnknownVariable", "component": d["component"],
                                           "variable": d["variable"]} for d in payload["getVariableData"]]}  # fmt: skip
        if action == "SetVariables":
            return {"setVariableResult": [{"attributeStatus": "Rejected", "component": d["component"],
                                           "variable": d["variable"]} for d in payload["setVariableData"]]}  # fmt: skip
        if action == "TriggerMessage":
            return {"status": "Accepted"}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        if action in ("GetLocalListVersion",):
            return {"listVersion": 0}
        if action == "ClearChargingProfile":
            return {"status": "Unknown"}
        return {"status": "Accepted"}

    def _register(self, connector: int, context: str, token: str = "") -> dict[str, Any]:
        """The connector's register now; signed as well at a Begin or End when the charger has a meter."""
        version, at, wh = self.spec.version, self.clock.now(), self.meter_wh[connector]
        tx = {"Transaction.Begin": BEGIN, "Transaction.End": END}.get(context)
        if self.spec.meter is None or tx is None:
            return frames.register(version, at, wh, context)
        signed = self.spec.meter.encoded(version, tx, at, round(wh, 1), token)
        if version == "1.6":
            return frames.meter_value(at, [frames.sampled_value(version, round(wh, 1), context),
                                           frames.sampled_value(version, 0, context, signed=signed)])  # fmt: skip
        return frames.meter_value(at, [frames.sampled_value(version, round(wh, 1), context, signed=signed)])

    def _quota(self, connector: int) -> int | None:
        """This connector's share of ``max_sessions`` (the first connectors take the remainder)."""
        if self.max_sessions is None:
            return None
        share, extra = divmod(self.max_sessions, self.spec.connectors)
        return share + (1 if connector <= extra else 0)

    async def _session(self, connector: int, token: str, rng: random.Random) -> None:
        spec, v16 = self.spec, self.spec.version == "1.6"
        want = rng.uniform(*spec.energy_wh)
        power = spec.max_power_w * rng.uniform(0.6, 1.0)
        await self.call("StatusNotification", self._status(connector, "Preparing"))
        if v16:
            await self.call("Authorize", {"idTag": token})
            answer = await self.call("StartTransaction", frames.start_transaction(
                connector, token, int(self.meter_wh[connector]), self.clock.now()))  # fmt: skip
            tx: str = str(answer["transactionId"]) if isinstance(answer, dict) else ""
            if spec.meter is not None:  # 1.6 StartTransaction has no meter values: the signed Begin follows
                self.enqueue("MeterValues", frames.meter_values(connector, int(tx) if tx else 0,
                                                                [self._register(connector, "Transaction.Begin", token)]))  # fmt: skip
        else:
            await self.call("Authorize", {"idToken": {"idToken": token, "type": "ISO14443"}})
            tx = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            await self.call("TransactionEvent", self._event("Started", tx, connector, "Authorized",
                                                            token, [self._register(connector, "Transaction.Begin", token)]))  # fmt: skip
        self.stats.sessions_started += 1
        await self.call("StatusNotification", self._status(connector, "Charging"))
        delivered = 0.0
        while delivered < want and tx not in self.stop_requested and not self.done.is_set():
            await self.clock.sleep(spec.meter_interval_s)
            taper = 1.0 if delivered < 0.8 * want else max(0.2, (want - delivered) / (0.2 * want))
            step = power * taper * spec.meter_interval_s / 3600.0
            delivered += step
            self.meter_wh[connector] += step
            if v16:
                self.enqueue("MeterValues", frames.meter_values(connector, int(tx) if tx else 0,
                                                                [self._register(connector, "Sample.Periodic")]))  # fmt: skip
            else:
                self.enqueue("TransactionEvent", self._event("Updated", tx, connector, "MeterValuePeriodic",
                                                                None, [self._register(connector, "Sample.Periodic")]))  # fmt: skip
            self.stats.meter_values_sent += 1
        if v16:
            await self.call("StopTransaction", frames.stop_transaction(
                int(tx) if tx else 0, token, int(self.meter_wh[connector]), self.clock.now(),
                "Remote" if tx in self.stop_requested else "EVDisconnected",
                [self._register(connector, "Transaction.End", token)]))  # fmt: skip
        else:
            await self.call("TransactionEvent", self._event("Ended", tx, connector, "EVDeparted", token,
                                                            [self._register(connector, "Transaction.End", token)],
                                                            stopped="Remote" if tx in self.stop_requested
                                                            else "EVDisconnected"))  # fmt: skip
        await self.call("StatusNotification", self._status(connector, "Available"))
        self.stats.sessions_completed += 1

    def _event(self, kind: str, tx: str, evse: int, trigger: str, token: str | None,
               values: list[dict[str, Any]], stopped: str | None = None) -> dict[str, Any]:  # fmt: skip
        payload = frames.transaction_event(kind, self.clock.now(), self.seq_no, tx, evse, trigger, token, values,
                                           stopped)  # fmt: skip
        self.seq_no += 1
        return payload

    async def _wait_online(self) -> bool:
        """Wait until the link is up (True) or the charger stopped for good (False)."""
        if self.online.is_set():
            return True
        waits = [asyncio.ensure_future(self.online.wait()), asyncio.ensure_future(self.done.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self.online.is_set()

    async def _connector_loop(self, connector: int) -> None:
        self.clock.timeline()
        rng = random.Random(f"{self.seed}:{connector}")
        quota, started = self._quota(connector), 0
        while not self.done.is_set():
            if quota is not None and started >= quota:
                return
            idle = rng.uniform(*self.spec.idle_s)
            waited = time.monotonic()
            try:
                token = await asyncio.wait_for(self.remote_starts.get(), idle / self.clock.acceleration)
                self.clock.advance((time.monotonic() - waited) * self.clock.acceleration)
            except TimeoutError:
                self.clock.advance(idle)
                token = rng.choice(self.spec.tokens)
            if not await self._wait_online():
                return  # the hub refused this charger for good (401/403/404): no session will ever start
            started += 1
            await self._session(connector, token, rng)

    async def _heartbeat(self, interval: float) -> None:
        while not self.done.is_set():
            await asyncio.sleep(interval)
            if self.online.is_set():
                with contextlib.suppress(Exception):
                    await self._call_now("Heartbeat", {})

    async def run(self, heartbeat_s: float = 300.0) -> SimStats:
        """Run until ``max_sessions`` sessions completed on every connector (or :meth:`stop`)."""
        link = asyncio.create_task(self._link())
        beat = asyncio.create_task(self._heartbeat(heartbeat_s))
        try:
            await asyncio.gather(*(self._connector_loop(c) for c in range(1, self.spec.connectors + 1)))
            await self._drain()
        finally:
            self.done.set()
            beat.cancel()
            if self.ws is not None:
                with contextlib.suppress(Exception):
                    await self.ws.close()
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link
        return self.stats

    def stop(self) -> None:
        self.done.set()
        if self.ws is not None:
            task = asyncio.get_running_loop().create_task(self.ws.close())
            task.add_done_callback(lambda _t: None)
