"""Helpers both protocol modules share: timestamps, the charger event log, OCPI status mapping."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cpo_gateway.framing import OcppError, dumps
from cpo_gateway.idempotent_insert import insert_ignoring_duplicates
from kernel.models import ChargerEvent
from kernel.timeutil import format_rfc3339, parse_datetime, utcnow

if TYPE_CHECKING:
    from cpo_gateway.connection import ChargerConnection


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
    return format_rfc3339(utcnow().replace(microsecond=0))


def _plain(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


async def log_event(conn: ChargerConnection, action: str, payload: dict[str, Any], when: Any = None) -> None:
    """Durably record a charger notification (idempotent on action + payload)."""
    db = conn.gw.db
    key = hashlib.sha256((action + dumps(payload)).encode()).hexdigest()
    stamp = None
    if isinstance(when, str):
        try:
            stamp = parse_datetime(when)
        except ValueError:
            stamp = None
    async with db.session() as db_session:
        await db_session.execute(
            insert_ignoring_duplicates(db, ChargerEvent).values(
                charge_point_id=conn.ref.id,
                action=action,
                timestamp=stamp,
                received_at=utcnow(),
                dedup_key=key,
                payload=_plain(payload),
            )
        )


OCPI_FROM_V16 = {
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}

OCPI_FROM_V201 = {
    "Available": "AVAILABLE",
    "Occupied": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}
