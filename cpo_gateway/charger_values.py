"""The values in a charger's payloads, the same for both OCPP versions: its timestamps and sampled values read
(a bad one is the charger's OCPP error), and the current time written into an answer."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from cpo_gateway.framing import OcppError
from kernel.timeutil import format_rfc3339, parse_datetime, utcnow


def ts(value: Any, field: str = "timestamp") -> datetime:
    """A charger timestamp as aware UTC; a bad one is a TypeConstraintViolation."""
    if not isinstance(value, str):
        raise OcppError("TypeConstraintViolation", f"{field} must be an RFC 3339 date-time")
    try:
        return parse_datetime(value)
    except ValueError:
        raise OcppError(
            "TypeConstraintViolation", f"{field}: {value!r} is not an RFC 3339 date-time"
        ) from None


MAX_SAMPLE = Decimal(10) ** 14
"""Meter values are stored as NUMERIC(20, 6): 14 digits before the point."""


def sample_value(value: Decimal, raw: Any) -> Decimal:
    """A sampled value the database can hold exactly; anything else is the charger's PropertyConstraintViolation
    (refused here, so one charger's absurd value never fails a batch shared with other chargers)."""
    if not value.is_finite():
        raise OcppError("PropertyConstraintViolation", f"sampledValue.value {raw!r} is not finite")
    if abs(value) >= MAX_SAMPLE:
        raise OcppError("PropertyConstraintViolation", f"sampledValue.value {raw!r} is out of range")
    return value


def now_text() -> str:
    """The current time for an answer's ``currentTime``: RFC 3339, whole seconds, UTC."""
    return format_rfc3339(utcnow().replace(microsecond=0))
