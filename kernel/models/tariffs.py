"""Tariffs, versioned: each change (an import or a grid-load price change) is a new immutable version.

A version is valid from ``start_date_time`` (or always) until the next version's start or ``end_date_time``.
``data`` is the OCPI 2.2.1 Tariff object exactly as published to partners.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, JSONDoc, UTCDateTime


class TariffVersion(Timestamped, Base):
    __tablename__ = "tariffs"
    __table_args__ = (UniqueConstraint("cpo_id", "tariff_id", "version"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), index=True)
    tariff_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str] = mapped_column(String(3))
    type: Mapped[str | None] = mapped_column(String(24), default=None)
    source: Mapped[str] = mapped_column(String(16), default="import")
    start_date_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    end_date_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    data: Mapped[dict] = mapped_column(JSONDoc)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    invalid_reason: Mapped[str | None] = mapped_column(Text, default=None)
    """Set when a stored version fails the tariff checks (stored before they existed): never applied."""
    supersedes_version: Mapped[int | None] = mapped_column(Integer, default=None)
    """An operator correction (``tariffs import --supersedes V``): this version takes over version V's
    validity window instead of starting when it was stored."""


class TariffPolicy(Timestamped, Base):
    """How a CPO's sessions use a tariff: ``price_lock`` = the versions valid at the session's start apply to
    the whole session (consumer law in some markets), instead of switching to newer versions mid-session.

    A row with ``tariff_id`` NULL is the CPO's default; a row with a tariff id overrides it for that tariff."""

    __tablename__ = "tariff_policies"
    __table_args__ = (UniqueConstraint("cpo_id", "tariff_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"), index=True)
    tariff_id: Mapped[str | None] = mapped_column(String(36), default=None)
    price_lock: Mapped[bool] = mapped_column(Boolean, default=False)
