"""OCPP-J framing: the message types and the errors a frame can carry.

A frame is a JSON array: ``[CALL, id, action, {payload}]``, ``[CALLRESULT, id, {payload}]`` or
``[CALLERROR, id, code, description, {details}]``. Nothing here knows about websockets or handlers: the
connection (:mod:`cpo_gateway.connection`) reads and writes frames with the hub's one exact JSON codec
(:func:`kernel.jsonutil.loads`, :func:`kernel.jsonutil.dumps_compact`: every number with a fraction is an
exact ``Decimal``, so meter values keep their digits, and a ``Decimal`` goes out with exactly its digits), and
the cluster router (:mod:`cpo_gateway.cluster`) uses the same codec and errors for commands routed between
processes. :func:`parse_frame` checks a frame's shape and says which CALLERROR a malformed one gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CALL = 2
CALLRESULT = 3
CALLERROR = 4


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
"""OCPP 1.6 spellings of the 2.0.1 error codes that differ (1.6 has typos in its own and fewer codes)."""

MAX_MESSAGE_ID_LENGTH = 36
"""OCPP-J 2.0.1 (4.1.3) and 1.6 (4.1.3): a message id is a string of at most 36 characters."""
_NUL = ("\x00", "\\u0000")


class FrameError(Exception):
    """A frame that cannot be handled: answered with a CALLERROR ``code`` (2.0.1 spelling) under ``unique_id``."""

    def __init__(self, unique_id: str, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.unique_id = unique_id
        self.code = code
        self.description = description


def parse_frame(text: str, loads: Callable[[str], Any]) -> list[Any]:
    """The frame ``text`` as its JSON array, checked as OCPP-J 2.0.1 section 4 has it, or :class:`FrameError`
    with the error the spec gives: not JSON, not an array, no readable message id, a CALL whose action is not a
    string or with other than four elements: ``RpcFrameworkError``; a CALL whose payload is not an object:
    ``FormatViolation``; a message type other than 2, 3 or 4: ``MessageTypeNotSupported``; a NUL character
    anywhere in a CALL (no stored text may hold one): ``PropertyConstraintViolation``. ``loads`` is the hub's JSON codec."""
    try:
        msg = loads(text)
    except (ValueError, RecursionError):  # RecursionError: arrays/objects nested deeper than the parser goes
        raise FrameError("-1", "RpcFrameworkError", "message is not valid JSON") from None
    if not isinstance(msg, list) or len(msg) < 3 or type(msg[0]) is not int:
        uid = msg[1] if isinstance(msg, list) and len(msg) > 1 and _readable_id(msg[1]) else "-1"
        raise FrameError(uid, "RpcFrameworkError", "not an OCPP-J message array")
    if not _readable_id(msg[1]):
        raise FrameError("-1", "RpcFrameworkError", "the message id must be a string of 1 to 36 characters")
    kind, uid = msg[0], msg[1]
    if kind not in (CALL, CALLRESULT, CALLERROR):
        raise FrameError(uid, "MessageTypeNotSupported", f"message type {kind} is not supported")
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str):
            raise FrameError(uid, "RpcFrameworkError", "CALL must be [2, id, action, {payload}]")
        if not isinstance(msg[3], dict):
            raise FrameError(uid, "FormatViolation", f"the payload of {msg[2][:40]} must be a JSON object")
        if any(nul in text for nul in _NUL):
            raise FrameError(uid, "PropertyConstraintViolation", "NUL characters are not allowed")
    return msg


def _readable_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_MESSAGE_ID_LENGTH
