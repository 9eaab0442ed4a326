"""OCPP-J framing: the message types, the errors a frame can carry, and the JSON codec of the wire.

A frame is a JSON array: ``[CALL, id, action, {payload}]``, ``[CALLRESULT, id, {payload}]`` or
``[CALLERROR, id, code, description, {details}]``. Nothing here knows about websockets or handlers: the
connection (:mod:`cpo_gateway.connection`) reads and writes frames with :func:`loads` and :func:`dumps`, and the
cluster router (:mod:`cpo_gateway.cluster`) uses the same codec and errors for commands routed between processes.

The codec reads every JSON number with a fraction as an exact ``Decimal`` (meter values keep their digits) and
writes a ``Decimal`` as an integer when it has no fraction, otherwise as a float: what chargers parse.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
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


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


# Built once: json.dumps(..., default=) and json.loads(..., parse_float=) build a new coder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)
_DECODER = json.JSONDecoder(parse_float=Decimal)

dumps: Callable[[Any], str] = _ENCODER.encode
"""A value as compact wire JSON (bound to the shared encoder: no call of our own on the hot path)."""

loads: Callable[[str], Any] = _DECODER.decode
"""Wire JSON as Python values, fractions as ``Decimal``; raises ``ValueError`` for text that is not JSON."""
