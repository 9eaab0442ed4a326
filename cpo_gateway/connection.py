"""One charger's websocket: OCPP-J framing, schema validation, dispatch, and calls to the charger.

Frames are handled one at a time per charger (OCPP allows one outstanding CALL each way), so a reply goes out
only after the handler committed. Bad input never leaves this class: a malformed frame gets a CALLERROR (or
the charger is disconnected for binary frames and floods); other chargers never notice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import get_validator

from cpo_gateway.events import ChargerRef
from cpo_gateway.schemas import fast_check
from evhub import metrics

if TYPE_CHECKING:
    from cpo_gateway.server import Gateway

log = logging.getLogger(__name__)


class OcppError(Exception):
    """Answered to the charger as a CALLERROR. ``code`` is the OCPP 2.0.1 spelling; 1.6 gets its own."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}


class CallErrorReply(Exception):
    """The charger answered one of our calls with a CALLERROR."""

    def __init__(self, code: str, description: str, details: Any) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details


V16_CODES = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "RpcFrameworkError": "FormationViolation",
    "MessageTypeNotSupported": "PropertyConstraintViolation",
}


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


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)
_DECODER = json.JSONDecoder(
    parse_float=Decimal
)  # built once: json.loads(..., parse_float=) builds one per call


def dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


def schema_error(exc: SchemaError) -> OcppError:
    """Map a JSON-schema failure to the OCPP error code the specs give for it."""
    kind = exc.validator
    where = "/".join(str(p) for p in exc.absolute_path) or "payload"
    desc = f"{where}: {exc.message}"[:250]
    if kind == "type" or kind == "maxLength":
        return OcppError("TypeConstraintViolation", desc)
    if kind in ("required", "minItems", "maxItems"):
        return OcppError("OccurrenceConstraintViolation", desc)
    if kind in ("enum", "minimum", "maximum", "minLength", "pattern", "multipleOf"):
        return OcppError("PropertyConstraintViolation", desc)
    return OcppError("FormatViolation", desc)


def validate(version: str, message_type: int, action: str, payload: Any) -> None:
    """Validate with the ocpp library's schemas (its validators are built once and cached).

    A payload the compiled predicate of :mod:`cpo_gateway.schemas` accepts is valid; everything else is
    decided by the library's validator."""
    check = fast_check(version, message_type, action)
    if check is not None and check(payload):
        return
    try:
        validator = get_validator(message_type, action, version)
    except (OSError, ValueError) as exc:
        raise OcppError("NotImplemented", f"no schema for {action}") from exc
    try:
        validator.validate(payload)
    except SchemaError as exc:
        raise schema_error(exc) from None
    except TypeError as exc:  # e.g. multipleOf on a Decimal
        raise OcppError("FormatViolation", str(exc)[:250]) from None


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

    def __init__(self, gateway: Gateway, ws: Any, ref: ChargerRef, version: str) -> None:
        from cpo_gateway import v16, v201

        self.gw = gateway
        self.ws = ws
        self.ref = ref
        self.version = version
        self.proto = v16 if version == "1.6" else v201
        self.handlers = self.proto.HANDLERS
        # message count per action (evhub.metrics), shared by the version's connections
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
        await self.ws.send(dumps([4, unique_id, wire_code, description, details or {}]))

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
            msg = _DECODER.decode(frame)
        except ValueError:
            await self.send_error("-1", "RpcFrameworkError", "message is not valid JSON")
            return
        if (
            not isinstance(msg, list)
            or len(msg) < 3
            or not isinstance(msg[1], str)
            or type(msg[0]) is not int
        ):
            uid = msg[1] if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str) else "-1"
            await self.send_error(uid, "RpcFrameworkError", "not an OCPP-J message array")
            return
        kind, uid = msg[0], msg[1]
        if kind == 2:
            if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
                await self.send_error(uid, "FormatViolation", "CALL must be [2, id, action, {payload}]")
                return
            await self.handle_call(uid, msg[2], msg[3])
        elif kind == 3:
            fut = self.pending.get(uid)
            if fut is not None and not fut.done():
                fut.set_result(msg[2])
        elif kind == 4:
            fut = self.pending.get(uid)
            if fut is not None and not fut.done():
                code = msg[2] if len(msg) > 2 else "GenericError"
                desc = msg[3] if len(msg) > 3 else ""
                fut.set_exception(CallErrorReply(str(code), str(desc), msg[4] if len(msg) > 4 else {}))
        else:
            await self.send_error(uid, "MessageTypeNotSupported", f"message type {kind} is not supported")

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
            validate(self.version, 2, action, payload)
            result = await handler(self, payload)
        except OcppError as exc:
            await self.send_error(uid, exc.code, exc.description, exc.details, action=action)
            return
        except Exception:
            log.exception("charger %s: %s failed", self.identity, action)
            await self.send_error(uid, "InternalError", f"{action} could not be processed", action=action)
            return
        # most answers are empty ({} for MeterValues, StatusNotification, ...): the frame is put together directly
        await self.ws.send(f"[3,{_ENCODER.encode(uid)},{{}}]" if not result else dumps([3, uid, result]))

    def _allowed_unaccepted(self, status: str, action: str) -> bool:
        if action in UNACCEPTED_ALLOWED[self.version]:
            return True
        return status == "Pending" and action in self.solicited

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> Any:
        """Send a CALL to the charger and return its CALLRESULT payload (CallErrorReply / TimeoutError)."""
        validate(self.version, 2, action, payload)
        self.solicited.update(solicited_actions(action, payload))
        async with self.call_lock:
            uid = str(uuid.uuid4())
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.pending[uid] = fut
            try:
                await self.ws.send(dumps([2, uid, action, payload]))
                return await asyncio.wait_for(fut, timeout)
            finally:
                self.pending.pop(uid, None)

    def fail_pending(self) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("charger disconnected"))
