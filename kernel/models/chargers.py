"""Charge points: the OCPP identities that connect to the gateway, and how their EVSE numbers map to EVSEs."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, UTCDateTime, enum_column


class RegistrationStatus(enum.StrEnum):
    """What a BootNotification is answered with."""

    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class OcppVersion(enum.StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"


class ChargePoint(Timestamped, Base):
    __tablename__ = "charge_points"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    identity: Mapped[str] = mapped_column(String(48), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    security_profile: Mapped[int] = mapped_column(Integer, default=1)
    ocpp_version: Mapped[OcppVersion] = mapped_column(enum_column(OcppVersion, 8))
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), index=True)
    location_id: Mapped[int | None] = mapped_column(
        ForeignKey("locations.id", ondelete="SET NULL"), default=None, index=True
    )
    registration_status: Mapped[RegistrationStatus] = mapped_column(
        enum_column(RegistrationStatus, 16), default=RegistrationStatus.ACCEPTED
    )
    vendor: Mapped[str | None] = mapped_column(String(50), default=None)
    model: Mapped[str | None] = mapped_column(String(50), default=None)
    serial_number: Mapped[str | None] = mapped_column(String(50), default=None)
    firmware_version: Mapped[str | None] = mapped_column(String(50), default=None)
    status: Mapped[str] = mapped_column(String(16), default="offline")
    connected_node: Mapped[str | None] = mapped_column(String(100), default=None)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    meter_public_key: Mapped[str | None] = mapped_column(Text, default=None)
    """The public key of the charger's signing meter (hex or base64 DER), set by the operator
    (``evhub chargers update --meter-public-key``); verifies its signed meter data (OCMF)."""

    evse_map: Mapped[list[ChargePointEvse]] = relationship(
        back_populates="charge_point", cascade="all, delete-orphan", order_by="ChargePointEvse.ocpp_evse_id"
    )


class ChargePointEvse(Base):
    """The charger's OCPP EVSE number (1.6: connectorId) -> the hub's EVSE (and its connector)."""

    __tablename__ = "charge_point_evses"
    __table_args__ = (UniqueConstraint("charge_point_id", "ocpp_evse_id"), UniqueConstraint("evse_pk"))

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    charge_point_id: Mapped[int] = mapped_column(ForeignKey("charge_points.id", ondelete="CASCADE"))
    ocpp_evse_id: Mapped[int] = mapped_column(Integer)
    evse_pk: Mapped[int] = mapped_column(ForeignKey("evses.id", ondelete="RESTRICT"))

    charge_point: Mapped[ChargePoint] = relationship(back_populates="evse_map")
