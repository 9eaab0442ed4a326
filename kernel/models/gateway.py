"""What chargers report besides sessions: firmware/diagnostics/log status, security events, device-model
reports, vendor data transfers. Kept as an event log per charge point (the payload as sent).

Replays are idempotent: ``dedup_key`` is a hash of the action and the canonical payload.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base
from kernel.db.types import BigID, JSONDoc, UTCDateTime
from kernel.timeutil import utcnow


class ChargerEvent(Base):
    __tablename__ = "charger_events"
    __table_args__ = (
        UniqueConstraint("charge_point_id", "dedup_key"),
        Index("ix_charger_events_cp_received", "charge_point_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    charge_point_id: Mapped[int] = mapped_column(ForeignKey("charge_points.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    dedup_key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSONDoc, default=dict)
