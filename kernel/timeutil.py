"""Time: everything stored is timezone-aware UTC; local time exists only at the edges (tariff rules, receipts).

Helpers here are the one place that converts: :func:`utcnow` (the hub's one clock, :data:`kernel.clock.CLOCK`:
real time unless pinned by a test, the demo or ``EVHUB_CLOCK_START``), :func:`ensure_utc` (refuses naive values),
:func:`parse_datetime` (RFC 3339 / ISO 8601 as OCPP and OCPI send it, ``Z`` or offsets; naive is taken as UTC
because both protocols define their timestamps as UTC), :func:`to_local` with an IANA zone, and
:func:`format_rfc3339` for what goes out on the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel.clock import CLOCK


def utcnow() -> datetime:
    """The current time, aware, in UTC, from the process clock (pinned in tests and the demo)."""
    return CLOCK.now()


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC; a naive datetime is an error (we never guess a zone)."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"naive datetime {value.isoformat()} where an aware one is required")
    return value.astimezone(UTC)


def parse_datetime(text: str) -> datetime:
    """Parse an OCPP/OCPI timestamp into aware UTC. A value without offset is UTC, as both specs define."""
    try:  # the common case, "...Z": Python 3.11 reads it as UTC directly
        parsed = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        if parsed.tzinfo is UTC:
            return parsed
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_rfc3339(value: datetime) -> str:
    """UTC with a ``Z`` suffix, as OCPI prints timestamps (milliseconds kept only when present)."""
    value = ensure_utc(value)
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


def to_local(value: datetime, time_zone: str) -> datetime:
    """The same instant in the given IANA zone (DST-correct)."""
    return ensure_utc(value).astimezone(zone(time_zone))
