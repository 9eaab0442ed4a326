"""OCPP-J framing: the message types and the errors a frame can carry.

A frame is a JSON array: ``[CALL, id, action, {payload}]``, ``[CALLRESULT, id, {payload}]`` or
``[CALLERROR, id, code, description, {details}]``. Nothing here knows about websockets or handlers: the
connection (:mod:`cpo_gateway.connection`) reads and writes frames with the hub's one exact JSON codec
(:func:`kernel.jsonutil.loads`, :func:`kernel.jsonutil.dumps_compact`: every number with a fraction is an
exact ``Decimal``, so meter values keep their digits, and a ``Decimal`` goes out with exactly its digits), and
the cluster router (:mod:`cpo_gateway.cluster`) uses the same codec and errors for commands routed between
processes.
"""

from __future__ import annotations

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
