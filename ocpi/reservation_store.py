"""The reservations the OCPI commands make: one ``reservations`` row per eMSP and ``reservation_id``.

``RESERVE_NOW`` writes the row (``PENDING``) in the request's transaction, with the charger the command goes
to and the id the charger gets. OCPI 2.2.1 mod_commands: "The ``reservation_id`` sent by the Sender (eMSP) to
the Receiver (CPO) SHALL NOT be sent directly to a Charge Point. The CPO SHALL make sure the Reservation ID sent
to the Charge Point is unique and is not used by another Sender (eMSP)": the charger's id is the row's own
number (``ocpp_reservation_id``), unique per charger. When the charger accepts, the row becomes ``ACTIVE`` with
``made_at`` = that moment (the reservation "starts when the reservation is made", mod_tariffs), before the
CommandResult is queued; a refusal makes it ``REJECTED``. "A reservation can be replaced/updated by sending a
``RESERVE_NOW`` request with the same Location (Charge Point) and the same ``reservation_id``": the row is
updated, keeps its charger id (so the charger replaces its reservation) and, while ``ACTIVE``, its
``made_at``. A ``reservation_id`` whose reservation was used or billed as expired is not reused.
``CANCEL_RESERVATION`` the charger confirmed makes it ``CANCELLED`` (never billed).

What happens next (``USED`` by a session, ``EXPIRED`` and billed) is the pricing stage's, through the table.
"""

from __future__ import annotations

import uuid
import zlib
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import Connector, Location, Reservation, ReservationStatus
from kernel.timeutil import utcnow
from ocpi.gateway_adapter import serving_charger
from ocpi.schemas.commands import ReserveNow

REUSABLE = (
    ReservationStatus.PENDING,
    ReservationStatus.ACTIVE,
    ReservationStatus.CANCELLED,
    ReservationStatus.REJECTED,
)
"""A ``RESERVE_NOW`` with the ``reservation_id`` of a row in one of these states replaces that reservation."""


class ReservationRefused(ValueError):
    """The ``reservation_id`` belongs to a reservation that was used or billed as expired."""


async def _charger(
    db_session: AsyncSession, loc: Location, evse_uid: str | None
) -> tuple[int, int | None, int | None, int | None] | None:
    """(charger pk, OCPP EVSE number, EVSE pk, connector pk) the command goes to: the charger serving the EVSE,
    or for a location-wide reservation the location's first charger, chosen by the gateway adapter's own
    :func:`~ocpi.gateway_adapter.serving_charger` (so the row names the charger the ReserveNow goes to)."""
    target = await serving_charger(db_session, loc.id, evse_uid)
    if target is None:
        return None
    if evse_uid is None:
        return target.charge_point_id, None, None, None
    connector_pk = await db_session.scalar(
        select(Connector.id).where(Connector.evse_pk == target.evse_pk).order_by(Connector.id).limit(1)
    )
    return target.charge_point_id, target.ocpp_evse_id, target.evse_pk, connector_pk


async def reserve(
    db_session: AsyncSession,
    *,
    cpo_id: int,
    emsp_id: int,
    loc: Location,
    body: ReserveNow,
    token_id: int | None,
) -> Reservation | None:
    """The row of a ``RESERVE_NOW`` (new or replaced), ``PENDING`` until the charger answers; None when no
    charger serves the location/EVSE (the command fails at the gateway). :class:`ReservationRefused` for a
    ``reservation_id`` already used or billed."""
    target = await _charger(db_session, loc, body.evse_uid)
    if target is None:
        return None
    cp_pk, ocpp_evse, evse_pk, connector_pk = target
    row = await db_session.scalar(
        select(Reservation).where(
            Reservation.emsp_id == emsp_id, Reservation.reservation_id == body.reservation_id
        )
    )
    if row is not None and row.status not in REUSABLE:
        raise ReservationRefused(f"reservation {body.reservation_id} was already {row.status.value.lower()}")
    if row is None:
        # a number nobody has, replaced by the row's own id once it has one (unique per charger)
        placeholder = -(zlib.crc32(uuid.uuid4().bytes) & 0x7FFFFFFF) - 1
        row = Reservation(
            reservation_id=body.reservation_id,
            ocpp_reservation_id=placeholder,
            cpo_id=cpo_id,
            emsp_id=emsp_id,
            charge_point_id=cp_pk,
            expiry=body.expiry_date,
            status=ReservationStatus.PENDING,
            data={},
        )
        db_session.add(row)
        await db_session.flush()
        row.ocpp_reservation_id = row.id
    elif row.status != ReservationStatus.ACTIVE:
        row.status = ReservationStatus.PENDING
        row.made_at = None
        row.session_id = None
    row.charge_point_id = cp_pk
    row.location_id = loc.id
    row.evse_pk = evse_pk
    row.connector_pk = connector_pk
    row.ocpp_evse_id = ocpp_evse
    row.token_id = token_id
    row.id_tag = body.token.uid
    row.expiry = body.expiry_date
    row.data = {
        **(row.data or {}),
        "token": body.token.model_dump(mode="json", exclude_none=True),
        "authorization_reference": body.authorization_reference,
    }
    await db_session.flush()
    return row


async def find(db_session: AsyncSession, emsp_id: int, reservation_id: str) -> Reservation | None:
    return await db_session.scalar(
        select(Reservation).where(
            Reservation.emsp_id == emsp_id, Reservation.reservation_id == reservation_id
        )
    )


async def record_reserve_answer(db: Database, reservation_pk: int, result: Any) -> None:
    """The charger's answer to ``ReserveNow`` (an OCPI CommandResultType): ``ACCEPTED`` makes the reservation
    ``ACTIVE``, made now (an already active one, replaced, keeps its start); anything else ``REJECTED``,
    unless it was active (the charger keeps the reservation it had)."""
    answer = str(result.get("result") if isinstance(result, dict) else result).upper()
    async with db.session() as db_session:
        row = await db_session.get(Reservation, reservation_pk)
        if row is None:
            return
        if answer == "ACCEPTED":
            if row.status != ReservationStatus.ACTIVE or row.made_at is None:
                row.made_at = utcnow()
            row.status = ReservationStatus.ACTIVE
        elif row.status == ReservationStatus.PENDING:
            row.status = ReservationStatus.REJECTED


async def record_cancel_answer(db: Database, reservation_pk: int, result: Any) -> None:
    """The charger's answer to ``CancelReservation``: ``CANCELED_RESERVATION`` cancels an active or pending
    reservation (a used or expired one stays as it is)."""
    answer = str(result.get("result") if isinstance(result, dict) else result).upper()
    if answer != "CANCELED_RESERVATION":
        return
    async with db.session() as db_session:
        await db_session.execute(
            update(Reservation)
            .where(
                Reservation.id == reservation_pk,
                Reservation.status.in_((ReservationStatus.ACTIVE, ReservationStatus.PENDING)),
            )
            .values(status=ReservationStatus.CANCELLED, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
