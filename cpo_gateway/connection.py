"""One charger's websocket: reading frames, dispatching its CALLs, and our calls to it.

The wire format is :mod:`cpo_gateway.framing`, payload checks are :mod:`cpo_gateway.validation`, and the
handlers come from the gateway (a table per OCPP version, :func:`cpo_gateway.dispatch.handlers_for`), so this
module knows no protocol version's messages. Frames are handled one at a time per charger (OCPP allows one
outstanding CALL each way), so a reply goes out only after the handler committed. Bad input never leaves this
class: a malformed frame gets a CALLERROR (or the charger is disconnected for binary frames and floods); other
chargers never notice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from cpo_gateway.events import ChargerRef
from cpo_gateway.framing import (
    CALL,
    CALLERROR,
    CALLRESULT,
    V16_CODES,
    CallErrorReply,
    FrameError,
    OcppError,
    parse_frame,
)
from cpo_gateway.validation import validate, validate_call
from kernel import metrics
from kernel.failures import BAD_INPUT, classify
from kernel.jsonutil import dumps_compact, loads
from kernel.logs import RateLimitedLog

if TYPE_CHECKING:
    from cpo_gateway.authorization import Authorizer
    from cpo_gateway.charger_store import ChargerStore
    from cpo_gateway.meter_writer import MeterWriter
    from cpo_gateway.session_store import SessionStore
    from kernel.db.engine import Database
    from kernel.settings import Settings

log = logging.getLogger(__name__)
FAILURES = RateLimitedLog(log)
"""Bad input and database outages in handlers: one line per kind per interval for all chargers, no traceback."""

Handler = Callable[["ChargerConnection", dict[str, Any]], Awaitable[dict[str, Any]]]
"""A CALL's handler: the connection and the validated payload in, the CALLRESULT payload out."""


class ConnectionHost(Protocol):
    """What a connection and its handlers use of the gateway process that accepted it
    (:class:`cpo_gateway.server.Gateway`)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def db(self) -> Database: ...
    @property
    def chargers(self) -> ChargerStore: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def meter_writer(self) -> MeterWriter: ...
    @property
    def authorizer(self) -> Authorizer: ...


# What a charger whose registration is not Accepted may still send (see docs/gateway.md, "Registration").
# OCPP 1.6 section 4.2 / 2.0.1 B02.FR.09 and B03.FR.07: only BootNotification, and, while Pending, what the
# central system asked for (TriggerMessage; 2.0.1 also GetBaseReport/GetReport -> NotifyReport). 1.6 says
# nothing about Heartbeat while not accepted; it is answered there (it only keeps the link alive).
UNACCEPTED_ALLOWED = {
    "1.6": frozenset({"BootNotification", "Heartbeat"}),
    "2.0.1": frozenset({"BootNotification"}),
}
TRIGGERED_ACTION = {
    "SignChargePointCertificate": "SignCertificate",
    "SignChargingStationCertificate": "SignCertificate",
    "SignV2GCertificate": "SignCertificate",
    "SignCombinedCertificate": "SignCertificate",
}


def solicited_actions(action: str, payload: dict[str, Any]) -> tuple[str, ...]:
    """The charger requests a central-system CALL asks for (allowed from a Pending charger afterwards)."""
    if action in ("TriggerMessage", "ExtendedTriggerMessage"):
        wanted = payload.get("requestedMessage")
        return (TRIGGERED_ACTION.get(wanted, wanted),) if isinstance(wanted, str) else ()
    if action in ("GetBaseReport", "GetReport"):
        return ("NotifyReport",)
    return ()


class RateLimiter:
    """Token bucket: ``rate`` messages per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ChargerConnection:
    """A connected charger."""

    def __init__(
        self, gateway: ConnectionHost, ws: Any, ref: ChargerRef, version: str, handlers: Mapping[str, Handler]
    ) -> None:
        """``handlers``: the CALL handlers of ``version`` by action, chosen by the gateway once per connection."""
        self.gw = gateway
        self.ws = ws
        self.ref = ref
        self.version = version
        self.handlers = handlers
        # message count per action (kernel.metrics), shared by the version's connections
        self.counted = metrics.ocpp_message_counters(version, self.handlers)
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.call_lock = asyncio.Lock()
        self.limiter = RateLimiter(gateway.settings.ocpp_rate_limit, gateway.settings.ocpp_rate_burst)
        self.last_heard = time.monotonic()
        self.heard_since_sweep = True
        self.connected_at = time.time()
        self.replaced = False
        self.closing: asyncio.Task[None] | None = None
        # charger requests the central system asked for (TriggerMessage etc.): allowed while Pending
        self.solicited: set[str] = set()
        # transaction id -> (session pk, meter start Wh, newest register timestamp) for the MeterValues fast path
        self.active_tx: dict[str, list[Any]] = {}

    @property
    def identity(self) -> str:
        return self.ref.identity

    def code(self, code: str) -> str:
        return V16_CODES.get(code, code) if self.version == "1.6" else code

    async def send_error(
        self,
        unique_id: str,
        code: str,
        description: str,
        details: Any = None,
        action: str = metrics.NO_ACTION,
    ) -> None:
        wire_code = self.code(code)
        metrics.ocpp_callerror(self.version, action, wire_code)
        await self.ws.send(dumps_compact([CALLERROR, unique_id, wire_code, description, details or {}]))

    async def run(self) -> None:
        async for frame in self.ws:
            await self.handle_frame(frame)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def close_soon(self, code: int, reason: str) -> None:
        """Start closing without blocking the reader: frames still queued are read and dropped meanwhile, so
        the charger's close frame gets through even when it flooded the buffer."""
        if self.closing is None:
            self.closing = asyncio.create_task(self.ws.close(code, reason))

    async def handle_frame(self, frame: str | bytes) -> None:
        if self.closing is not None:
            return
        self.last_heard = time.monotonic()
        self.heard_since_sweep = True
        if not self.limiter.allow():
            log.warning("charger %s flooding; disconnecting", self.identity)
            metrics.ocpp_rate_limit_disconnect(self.version)
            self.close_soon(1008, "message rate limit exceeded")
            return
        if isinstance(frame, bytes):
            self.close_soon(1003, "OCPP-J uses text frames")
            return
        try:
            msg = parse_frame(frame, loads)
        except FrameError as bad:
            await self.send_error(bad.unique_id, bad.code, bad.description)
            return
        kind, uid = msg[0], msg[1]
        if kind == CALL:
            await self.handle_call(uid, msg[2], msg[3])
        elif kind == CALLRESULT:
            fut = self.pending.get(uid)
            if fut is not None and not fut.done():
                fut.set_result(msg[2])
        elif kind == CALLERROR:
            fut = self.pending.get(uid)
            if fut is not None and not fut.done():
                code = msg[2] if len(msg) > 2 else "GenericError"
                desc = msg[3] if len(msg) > 3 else ""
                fut.set_exception(CallErrorReply(str(code), str(desc), msg[4] if len(msg) > 4 else {}))

    async def handle_call(self, uid: str, action: str, payload: dict[str, Any]) -> None:
        handler = self.handlers.get(action)
        if handler is None:
            self.counted[metrics.UNKNOWN_ACTION] += 1
            await self.send_error(
                uid, "NotImplemented", f"{action} is not implemented", action=metrics.UNKNOWN_ACTION
            )
            return
        self.counted[action] += 1
        status = self.ref.registration_status
        if status != "Accepted" and not self._allowed_unaccepted(status, action):
            await self.send_error(
                uid,
                "SecurityError",
                f"registration status is {status}: only BootNotification is accepted",
                action=action,
            )
            return
        try:
            validate(self.version, CALL, action, payload)
            result = await handler(self, payload)
        except OcppError as exc:
            await self.send_error(uid, exc.code, exc.description, exc.details, action=action)
            return
        except Exception as exc:
            failure = classify(exc)  # a value nothing can store (422), or the database unreachable (503)
            if failure is None:
                log.exception("charger %s: %s failed", self.identity, action)
                await self.send_error(uid, "InternalError", f"{action} could not be processed", action=action)
            elif failure.kind == BAD_INPUT:
                FAILURES.info(failure.kind, f"charger {self.identity}: {action} refused: {failure.message}")
                await self.send_error(uid, "PropertyConstraintViolation", failure.message, action=action)
            else:
                FAILURES.warning(failure.kind, f"charger {action} not processed: {failure.message}")
                await self.send_error(uid, "InternalError", failure.message, action=action)
            return
        # most answers are empty ({} for MeterValues, StatusNotification, ...): the frame is put together directly
        await self.ws.send(
            f"[3,{dumps_compact(uid)},{{}}]" if not result else dumps_compact([CALLRESULT, uid, result])
        )

    def _allowed_unaccepted(self, status: str, action: str) -> bool:
        if action in UNACCEPTED_ALLOWED[self.version]:
            return True
        return status == "Pending" and action in self.solicited

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> Any:
        """Send a CALL to the charger and return its CALLRESULT payload (CallErrorReply / TimeoutError)."""
        validate_call(self.version, action, payload)  # formats too: what the hub sends must be exact
        self.solicited.update(solicited_actions(action, payload))
        async with self.call_lock:
            uid = str(uuid.uuid4())
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.pending[uid] = fut
            try:
                await self.ws.send(dumps_compact([CALL, uid, action, payload]))
                return await asyncio.wait_for(fut, timeout)
            finally:
                self.pending.pop(uid, None)

    def fail_pending(self) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("charger disconnected"))
