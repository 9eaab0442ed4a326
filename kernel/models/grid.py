"""Grid load and the dynamic-pricing rules attached to it.

``grid_load`` is the load time series per grid zone (percent of capacity), unique per (zone, timestamp) so a
replayed sample is stored once. ``grid_tariff_rules`` attaches rules to a CPO's tariff for a zone and keeps the
state machine's state (active rule, last change) so decisions survive restarts.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import Amount, BigID, JSONDoc, UTCDateTime


class GridLoadSample(Base):
    __tablename__ = "grid_load"
    __table_args__ = (UniqueConstraint("zone", "timestamp"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    load_percent: Mapped[Decimal] = mapped_column(Amount())


class GridTariffRule(Timestamped, Base):
    __tablename__ = "grid_tariff_rules"
    __table_args__ = (UniqueConstraint("zone", "cpo_id", "tariff_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    zone: Mapped[str] = mapped_column(String(64), index=True)
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    tariff_id: Mapped[str] = mapped_column(String(36))
    rules: Mapped[list] = mapped_column(JSONDoc, default=list)
    hysteresis: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    min_hold_s: Mapped[int] = mapped_column(Integer, default=0)
    active_rule: Mapped[str | None] = mapped_column(String(64), default=None)
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
