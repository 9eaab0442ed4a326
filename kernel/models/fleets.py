"""Fleets and the managers who log in to the portal to see and control their drivers' charging."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, UTCDateTime


class Fleet(Timestamped, Base):
    __tablename__ = "fleets"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    emsp_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), default=None)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")


class FleetManager(Timestamped, Base):
    __tablename__ = "fleet_managers"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    fleet_id: Mapped[int] = mapped_column(ForeignKey("fleets.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    password_hash: Mapped[str] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
