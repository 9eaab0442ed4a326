"""The fleet portal's own tables: login sessions, its signing key, drivers, vehicles, and receipt status.

* ``portal_sessions``: server-side login sessions. The browser holds a random token (signed), the database
  only its SHA-256, so logout and lockout really end a session, on every node of a cluster.
* ``portal_keys``: the HMAC key that signs the portal's cookies, created once per database so every node
  shares it (``EVHUB_PORTAL_SECRET`` overrides it).
* ``fleet_drivers`` / ``fleet_vehicles``: a fleet's people and cars. Assigning a token copies the driver's
  name and email (and the vehicle's label) onto the token, which is what sessions, CDRs and receipts read.
* ``receipts``: one row per CDR that gets (or could not get) a receipt email; its status records a bounce or a
  refused address so it is never retried forever.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, UTCDateTime, enum_column
from kernel.timeutil import utcnow


class PortalSession(Base):
    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    manager_id: Mapped[int] = mapped_column(ForeignKey("fleet_managers.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class PortalKey(Base):
    __tablename__ = "portal_keys"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FleetDriver(Timestamped, Base):
    __tablename__ = "fleet_drivers"
    __table_args__ = (UniqueConstraint("fleet_id", "name"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    fleet_id: Mapped[int] = mapped_column(ForeignKey("fleets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), default=None)


class FleetVehicle(Timestamped, Base):
    __tablename__ = "fleet_vehicles"
    __table_args__ = (UniqueConstraint("fleet_id", "label"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    fleet_id: Mapped[int] = mapped_column(ForeignKey("fleets.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    plate: Mapped[str | None] = mapped_column(String(20), default=None)


class ReceiptStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    BOUNCED = "bounced"
    FAILED = "failed"
    SKIPPED = "skipped"


class Receipt(Timestamped, Base):
    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cdr_id: Mapped[int] = mapped_column(ForeignKey("cdrs.id", ondelete="RESTRICT"), unique=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id", ondelete="SET NULL"), default=None)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    status: Mapped[ReceiptStatus] = mapped_column(
        enum_column(ReceiptStatus, 16), default=ReceiptStatus.QUEUED
    )
    message_id: Mapped[str | None] = mapped_column(String(255), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
