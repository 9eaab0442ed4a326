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
"""Meter values are stored as NUMERIC(20, 6): 14 digits before the point. (A value in kWh that fits may still
overflow the session's energy in Wh: the group commit then refuses that charger's message alone,
:meth:`cpo_gateway.meter_writer.MeterWriter._commit`.)"""
MAX_TEXT = 40
"""...and as text of at most 40 characters on SQLite (``kernel.db.types.Amount``): a value whose fixed-point
form is longer (``1e-20000``, 20,002 characters, which PostgreSQL refuses as "value overflows numeric
format") is no meter's reading."""
MAX_MULTIPLIER = 40
"""A 2.0.1 ``unitOfMeasure.multiplier`` beyond +-40 scales any non-zero value out of range."""


def _fixed_length(value: Decimal) -> int:
    """The length of ``format(value, "f")`` without building it (1e-20000 would be 20,002 characters)."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    size = len(digits)
    length = size + exponent if exponent >= 0 else max(size + exponent, 1) + 1 - exponent
    return length + sign


def sample_value(value: Decimal, raw: Any) -> Decimal:
    """A sampled value the database can hold exactly; anything else is the charger's PropertyConstraintViolation
    (refused here, so one charger's absurd value never fails a batch shared with other chargers)."""
    if not value.is_finite():
        raise OcppError("PropertyConstraintViolation", f"sampledValue.value {_short(raw)} is not finite")
    if abs(value) >= MAX_SAMPLE or _fixed_length(value) > MAX_TEXT:
        raise OcppError("PropertyConstraintViolation", f"sampledValue.value {_short(raw)} is out of range")
    return value


def scaled_sample(value: Decimal, multiplier: Any, raw: Any) -> Decimal:
    """A 2.0.1 sampled value with its ``unitOfMeasure.multiplier`` applied, checked as :func:`sample_value`;
    a multiplier that is not a small integer is the charger's PropertyConstraintViolation."""
    try:
        power = int(multiplier)
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        power = None
    if power is None or power != multiplier or abs(power) > MAX_MULTIPLIER:
        raise OcppError(
            "PropertyConstraintViolation", f"unitOfMeasure.multiplier {_short(multiplier)} is out of range"
        )
    return sample_value(value.scaleb(power) if power else value, raw)


def _short(raw: Any) -> str:
    """A charger's value for an error text: its repr, cut to 40 characters."""
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def now_text() -> str:
    """The current time for an answer's ``currentTime``: RFC 3339, whole seconds, UTC."""
    return format_rfc3339(utcnow().replace(microsecond=0))
