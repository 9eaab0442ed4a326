"""Reservations: an EVSE (or a location) held for a token, made through OCPI ``RESERVE_NOW`` or the operator.

A reservation is billable (OCPI 2.2.1 TariffRestrictions ``reservation``): it "starts when the reservation is
made, and ends when the driver starts charging on the reserved EVSE/Location, or when the reservation
expires". ``made_at`` is when the charger accepted it; a session that starts with its reservation id marks it
``USED`` and links it (its CDR carries the reservation time); one that expires unused is priced on its own
(``RESERVATION_EXPIRES``) as a CDR without a session id.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, JSONDoc, UTCDateTime, enum_column


class ReservationStatus(enum.StrEnum):
    """Where a reservation stands."""

    PENDING = "PENDING"
    """Asked of the charger, not yet accepted."""
    ACTIVE = "ACTIVE"
    USED = "USED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


class Reservation(Timestamped, Base):
    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("charge_point_id", "ocpp_reservation_id"),
        UniqueConstraint("emsp_id", "reservation_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    reservation_id: Mapped[str] = mapped_column(String(36))
    """The id the requester gave (OCPI ``reservation_id``, CiString(36))."""
    ocpp_reservation_id: Mapped[int] = mapped_column(Integer)
    """The integer id sent to the charger (OCPP ``reservationId``)."""
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), index=True)
    emsp_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), default=None, index=True)
    charge_point_id: Mapped[int] = mapped_column(ForeignKey("charge_points.id", ondelete="RESTRICT"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"), default=None, index=True)
    evse_pk: Mapped[int | None] = mapped_column(ForeignKey("evses.id"), default=None)
    connector_pk: Mapped[int | None] = mapped_column(ForeignKey("connectors.id"), default=None)
    ocpp_evse_id: Mapped[int | None] = mapped_column(Integer, default=None)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"), default=None, index=True)
    id_tag: Mapped[str | None] = mapped_column(String(36), default=None)
    status: Mapped[ReservationStatus] = mapped_column(
        enum_column(ReservationStatus, 16), default=ReservationStatus.PENDING
    )
    made_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    expiry: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"), default=None, index=True)
    """The session that used it; for an expired one, the reservation-only session its CDR belongs to."""
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)
