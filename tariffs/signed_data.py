"""A session's signed meter data at rating time: verified, stored on the session, and the CDR's ``signed_data``.

:func:`session_signed_data` (the database step, run by :func:`tariffs.cdr_builder.load_inputs`):

1. the session's signed Begin and End: the first signed ``Transaction.Begin`` energy register row and the last
   signed ``Transaction.End`` one (without a signed End, the last signed row that is not the Begin; without
   any signed row, ``sessions.signed_meter_data`` as the End), each with the plain register there: the row's
   own value, or the session's meter start/stop when the row is a 1.6 signed-only placeholder;
2. the public key: the one the operator set for the charger (``charge_points.meter_public_key``), else the one
   a 2.0.1 charger sent with its signed values (``sessions.meter_public_key``), else one embedded in the OCMF
   message (:func:`kernel.signed_meter.verify`);
3. the outcome in ``sessions.signed_verification`` / ``signed_verification_reason`` (in the rating
   transaction; a session without signed data gets none);
4. :func:`cdr_signed_data` (pure): the OCPI 2.2.1 CDR ``SignedData`` object, or None when there is nothing to
   send or it is ``invalid`` (the CDR still goes out, without it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.energy import format_kwh
from kernel.meter_reading import BEGIN, END, ENERGY_REGISTER, in_base_unit
from kernel.models import ChargePoint, ChargingSession, MeterValue
from kernel.signed_meter import (
    INVALID,
    SignedReading,
    Verification,
    as_base64,
    verify,
    version_number,
)

log = logging.getLogger(__name__)

SIGNED_DATA_MAX = 5000
"""OCPI 2.2.1 SignedValue ``signed_data``: string(5000)."""
PLAIN_DATA_MAX = 512
"""OCPI 2.2.1 SignedValue ``plain_data``: string(512)."""
PUBLIC_KEY_MAX = 512
"""OCPI 2.2.1 SignedData ``public_key``: string(512)."""


@dataclass(frozen=True, slots=True)
class SignedRow:
    """A stored energy register row with signed data."""

    timestamp: datetime
    context: str
    unit: str
    value: Decimal
    signed_data: str


@dataclass(frozen=True, slots=True)
class SessionSigned:
    """What :func:`session_signed_data` found: the signed Begin/End and their verification (None: no signed
    data), and the CDR object."""

    begin: SignedReading | None
    end: SignedReading | None
    verification: Verification | None
    cdr_object: dict[str, Any] | None


def begin_and_end(
    rows: Sequence[SignedRow], meter_start_wh: Decimal | None, meter_stop_wh: Decimal | None
) -> tuple[SignedReading | None, SignedReading | None]:
    """The signed Begin and End of a session from its signed register rows in time order (see the module
    docstring), each with the plain register at that point."""
    begin_row = next((r for r in rows if r.context == BEGIN), None)
    end_row = next((r for r in reversed(rows) if r.context == END), None)
    if end_row is None:
        end_row = next((r for r in reversed(rows) if r is not begin_row), None)
    begin = SignedReading(begin_row.signed_data, _plain(begin_row, meter_start_wh)) if begin_row else None
    end = SignedReading(end_row.signed_data, _plain(end_row, meter_stop_wh)) if end_row else None
    return begin, end


def _plain(row: SignedRow, fallback: Decimal | None) -> Decimal | None:
    """The plain register (Wh) of a signed row: its own value, or (a signed-only placeholder) ``fallback``."""
    wh = in_base_unit(ENERGY_REGISTER, row.unit, row.value)
    return wh if wh is not None else fallback


async def session_signed_data(db_session: AsyncSession, charging_session: ChargingSession) -> SessionSigned:
    """Verify the session's signed meter data, store the outcome on the session and build the CDR object."""
    rows = [
        SignedRow(ts, context, unit, value, signed or "")
        for ts, context, unit, value, signed in await db_session.execute(
            select(
                MeterValue.timestamp,
                MeterValue.context,
                MeterValue.unit,
                MeterValue.value,
                MeterValue.signed_data,
            )
            .where(
                MeterValue.session_id == charging_session.id,
                MeterValue.measurand == ENERGY_REGISTER,
                MeterValue.phase == "",
                MeterValue.signed_data.is_not(None),
                MeterValue.signed_data != "",
            )
            .order_by(MeterValue.timestamp, MeterValue.context)
        )
    ]
    begin, end = begin_and_end(rows, charging_session.meter_start_wh, charging_session.meter_stop_wh)
    if begin is None and end is None and charging_session.signed_meter_data:
        end = SignedReading(charging_session.signed_meter_data, charging_session.meter_stop_wh)
    configured = await db_session.scalar(
        select(ChargePoint.meter_public_key).where(ChargePoint.id == charging_session.charge_point_id)
    )
    key = (configured or "").strip() or (charging_session.meter_public_key or "").strip() or None
    verification = verify(begin, end, key)
    charging_session.signed_verification = verification.status if verification else None
    charging_session.signed_verification_reason = verification.reason if verification else None
    return SessionSigned(begin, end, verification, cdr_signed_data(verification, begin, end))


def cdr_signed_data(
    verification: Verification | None, begin: SignedReading | None, end: SignedReading | None
) -> dict[str, Any] | None:
    """The OCPI 2.2.1 CDR ``SignedData``: ``encoding_method`` (OCMF, else UNKNOWN), ``encoding_method_version``
    (a whole-number OCMF format version), ``public_key`` (base64 DER, when known), ``signed_values`` (nature
    ``Start`` and ``End``; ``plain_data`` the reading as the meter signed it, else the plain register;
    ``signed_data`` base64). None without signed data, when ``invalid``, or when no value fits OCPI's 5000
    characters."""
    if verification is None or verification.status == INVALID:
        return None
    values = []
    for nature, signed, signed_text in (
        ("Start", begin, verification.begin_value),
        ("End", end, verification.end_value),
    ):
        if signed is None:
            continue
        blob = as_base64(signed.data)
        if len(blob) > SIGNED_DATA_MAX:
            log.warning(
                "signed %s data of %d characters left out of the CDR (OCPI: at most 5000)", nature, len(blob)
            )
            continue
        plain = signed_text or (
            f"{format_kwh(signed.plain_wh / 1000)} kWh" if signed.plain_wh is not None else ""
        )
        values.append({"nature": nature, "plain_data": plain[:PLAIN_DATA_MAX], "signed_data": blob})
    if not values:
        return None
    out: dict[str, Any] = {"encoding_method": verification.encoding}
    version = version_number(verification.encoding_version)
    if version is not None:
        out["encoding_method_version"] = version
    if verification.public_key and len(verification.public_key) <= PUBLIC_KEY_MAX:
        out["public_key"] = verification.public_key
    out["signed_values"] = values
    return out
