"""Reservations in pricing: the reservation time of a session's CDR, and the CDR of a reservation that expired.

OCPI 2.2.1 (mod_tariffs, TariffRestrictions ``reservation``): "A reservation starts when the reservation is
made, and ends when the driver starts charging on the reserved EVSE/Location, or when the reservation
expires." A reservation is made when the charger accepted the OCPI ``RESERVE_NOW`` (``made_at``, written by
the OCPI commands module with the row, status ``ACTIVE``).

* **Used.** A session the charger started with the reservation's id (1.6 ``StartTransaction.reservationId``,
  2.0.1 ``TransactionEvent.reservationId``, kept by the gateway as ``sessions.data["reservation_id"]``) on the
  reservation's charger, between ``made_at`` and ``expiry``, uses it: :func:`link_session` marks it ``USED``
  with ``session_id``. Its CDR gets one more period before the session's own, reservation time from
  ``made_at`` to the session start, priced by the tariff's ``RESERVATION`` elements
  (:func:`add_reservation_periods`), and the CDR starts at the reservation's start.
* **Expired.** :func:`expire_reservations` (the scheduled job of :mod:`tariffs.reservation_job`) marks an
  ``ACTIVE`` reservation past its ``expiry`` ``EXPIRED`` and stores a reservation-only session (status
  ``RESERVATION``, transaction id ``reservation:<id>``, ``made_at`` to ``expiry``, waiting to be priced): the
  rating job prices it like any session, with only the expired reservation period (``RESERVATION_EXPIRES``
  elements: "costs for a reservation that expires (i.e. driver does not start a charging session before
  expiry_date of the reservation)"), and its CDR, without ``session_id`` ("Is only allowed to be omitted
  when ... this CDR is the result of a reservation that never became a charging session"), is pushed through
  the CDR hooks like any other.
* **Cancelled** reservations are not billed: OCPI 2.2.1 prices a reservation that ends in a charging session
  or expires, and names no cost for one the eMSP cancelled.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import (
    ChargingSession,
    Connector,
    PricingState,
    Reservation,
    ReservationStatus,
    SessionStatus,
)
from tariffs.core.charging_periods import Period, cut_for_tariffs, reservation
from tariffs.core.compiled_tariff import CompiledTariff

CLOCK_TOLERANCE = timedelta(seconds=300)
"""How far a charger's clock (the session start) may be from the hub's (``made_at``, ``expiry``) for a start to
still use a reservation: the default of the ``clock_skew`` setting. A start stamped before ``made_at`` gets no
reservation time."""

RESERVATION_NAMESPACE = uuid.UUID("2b0c6f4e-3a51-4d8e-9f0b-5c7a1e9d4b27")
"""Namespace of the session uid of a reservation-only session (the same reservation, the same uid)."""


def transaction_id_for(reservation_pk: int) -> str:
    """The transaction id of the reservation-only session of reservation ``reservation_pk``."""
    return f"reservation:{reservation_pk}"


def reservation_periods(res: Reservation, charging_session: ChargingSession) -> list[Period]:
    """The reservation time ``charging_session``'s CDR carries (pure): from ``made_at`` to the session start
    for a used reservation, from ``made_at`` to ``expiry`` (``expired``) for a reservation-only session."""
    made = res.made_at
    if made is None:
        return []
    if charging_session.status == SessionStatus.RESERVATION:
        return [reservation(made, res.expiry, expired=True)] if made < res.expiry else []
    start = charging_session.start_time
    return [reservation(made, start)] if made < start else []


def _reservation_number(charging_session: ChargingSession) -> int | None:
    raw = (charging_session.data or {}).get("reservation_id")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None


async def link_session(db_session: AsyncSession, charging_session: ChargingSession) -> Reservation | None:
    """The reservation ``charging_session`` belongs to: the one linked to it already (used, or the expired one
    of a reservation-only session), else the ``ACTIVE`` reservation of its charger with the reservation id the
    charger started it with, made before and expiring after its start (within :data:`CLOCK_TOLERANCE`), which
    is marked ``USED`` and linked here. None when the session has no reservation."""
    linked = await db_session.scalar(
        select(Reservation).where(Reservation.session_id == charging_session.id).order_by(Reservation.id)
    )
    if linked is not None or charging_session.status == SessionStatus.RESERVATION:
        return linked
    number = _reservation_number(charging_session)
    if number is None:
        return None
    res = await db_session.scalar(
        select(Reservation).where(
            Reservation.charge_point_id == charging_session.charge_point_id,
            Reservation.ocpp_reservation_id == number,
            Reservation.status == ReservationStatus.ACTIVE,
        )
    )
    start = charging_session.start_time
    if res is None or res.made_at is None:
        return None
    if not res.made_at - CLOCK_TOLERANCE <= start <= res.expiry + CLOCK_TOLERANCE:
        return None
    res.status = ReservationStatus.USED
    res.session_id = charging_session.id
    await db_session.flush()
    return res


async def add_reservation_periods(
    db_session: AsyncSession,
    charging_session: ChargingSession,
    periods: Sequence[Period],
    versions: Sequence[CompiledTariff],
    time_zone: str,
) -> list[Period]:
    """``periods`` (the session's own, already cut) with the reservation time of the session's reservation
    before them, cut at the tariffs' boundaries; for a reservation-only session the expired reservation
    period alone. Unchanged when the session has no reservation."""
    res = await link_session(db_session, charging_session)
    if res is None:
        return list(periods)
    extra = reservation_periods(res, charging_session)
    own = [] if charging_session.status == SessionStatus.RESERVATION else list(periods)
    if not extra:
        return own
    start = charging_session.start_time
    end = charging_session.end_time or start
    return [*cut_for_tariffs(extra, versions, start, end, time_zone), *own]


# ------------------------------------------------------------------------------------------------- the job


async def _started_with(db_session: AsyncSession, res: Reservation) -> ChargingSession | None:
    """A session of the reservation's charger started with its id between ``made_at`` and ``expiry`` (within
    :data:`CLOCK_TOLERANCE`)."""
    if res.made_at is None:
        return None
    candidates = await db_session.scalars(
        select(ChargingSession)
        .where(
            ChargingSession.charge_point_id == res.charge_point_id,
            ChargingSession.start_time >= res.made_at - CLOCK_TOLERANCE,
            ChargingSession.start_time <= res.expiry + CLOCK_TOLERANCE,
            ChargingSession.status != SessionStatus.RESERVATION,
        )
        .order_by(ChargingSession.start_time, ChargingSession.id)
    )
    for cs in candidates:
        if _reservation_number(cs) == res.ocpp_reservation_id:
            return cs
    return None


async def _connector_of(db_session: AsyncSession, res: Reservation) -> int | None:
    if res.connector_pk is not None or res.evse_pk is None:
        return res.connector_pk
    return await db_session.scalar(
        select(Connector.id).where(Connector.evse_pk == res.evse_pk).order_by(Connector.id).limit(1)
    )


def reservation_session(res: Reservation, connector_pk: int | None, *, now: datetime) -> ChargingSession:
    """The reservation-only session of the expired reservation ``res`` (pure): status ``RESERVATION``, from
    ``made_at`` to ``expiry``, no energy, waiting to be priced."""
    made = res.made_at or res.expiry
    return ChargingSession(
        session_uid=str(uuid.uuid5(RESERVATION_NAMESPACE, transaction_id_for(res.id))),
        charge_point_id=res.charge_point_id,
        transaction_id=transaction_id_for(res.id),
        cpo_id=res.cpo_id,
        location_id=res.location_id,
        evse_pk=res.evse_pk,
        connector_pk=connector_pk,
        ocpp_evse_id=res.ocpp_evse_id,
        token_id=res.token_id,
        id_tag=res.id_tag,
        auth_method="COMMAND",
        status=SessionStatus.RESERVATION,
        start_time=made,
        end_time=res.expiry,
        meter_start_wh=0,
        meter_stop_wh=0,
        energy_wh=0,
        pricing_state=PricingState.PENDING,
        data={"reservation_id": res.ocpp_reservation_id, "ocpi_reservation_id": res.reservation_id},
        last_updated=now,
    )


async def expire_reservations(
    db: Database, *, now: datetime, grace: timedelta = timedelta(0), limit: int = 500
) -> int:
    """One run of the reservation job at ``now`` (the caller's clock): every ``ACTIVE`` reservation a session
    was started with becomes ``USED``; every other one whose ``expiry`` is more than ``grace`` ago (a start
    just before the expiry may still be on its way) becomes ``EXPIRED`` with its reservation-only session
    waiting to be priced, in one transaction per reservation. Idempotent (the session's transaction id is
    unique per charger). Returns how many expired."""
    async with db.session() as db_session:
        ids = (
            await db_session.scalars(
                select(Reservation.id)
                .where(Reservation.status == ReservationStatus.ACTIVE)
                .order_by(Reservation.expiry, Reservation.id)
                .limit(limit)
            )
        ).all()
    expired = 0
    for pk in ids:
        async with db.session() as db_session:
            query = select(Reservation).where(
                Reservation.id == pk, Reservation.status == ReservationStatus.ACTIVE
            )
            if not db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            res = await db_session.scalar(query)
            if res is None:
                continue
            used = await _started_with(db_session, res)
            if used is not None:
                await link_session(db_session, used)
                continue
            if res.expiry + grace > now:
                continue
            existing = await db_session.scalar(
                select(ChargingSession).where(
                    ChargingSession.charge_point_id == res.charge_point_id,
                    ChargingSession.transaction_id == transaction_id_for(res.id),
                )
            )
            if existing is None:
                existing = reservation_session(res, await _connector_of(db_session, res), now=now)
                db_session.add(existing)
                await db_session.flush()
            res.status = ReservationStatus.EXPIRED
            res.session_id = existing.id
            expired += 1
    return expired
