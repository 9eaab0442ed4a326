"""Meter values a charger reports outside any transaction (OCPP 1.6 MeterValues without ``transactionId``,
OCPP 2.0.1 MeterValues): per EVSE/connector, or for the whole charger (EVSE 0, e.g. its main meter).

Idempotency key: (charge point, EVSE number, timestamp, measurand, phase, location, context), so a replayed
message never adds a row twice.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base
from kernel.db.types import Amount, BigID, UTCDateTime
from kernel.timeutil import utcnow


class ChargerMeterValue(Base):
    """One sampled value of a charger (not of a session), at the charger's own timestamp."""

    __tablename__ = "charger_meter_values"
    __table_args__ = (
        UniqueConstraint(
            "charge_point_id",
            "ocpp_evse_id",
            "timestamp",
            "measurand",
            "phase",
            "location",
            "context",
            name="uq_charger_meter_values_sample",
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    charge_point_id: Mapped[int] = mapped_column(ForeignKey("charge_points.id", ondelete="CASCADE"))
    ocpp_evse_id: Mapped[int] = mapped_column(Integer, default=0)
    """The charger's EVSE number (1.6: connectorId); 0 is the charger as a whole."""
    evse_pk: Mapped[int | None] = mapped_column(ForeignKey("evses.id", ondelete="SET NULL"), default=None)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    measurand: Mapped[str] = mapped_column(String(48), default="Energy.Active.Import.Register")
    phase: Mapped[str] = mapped_column(String(8), default="")
    location: Mapped[str] = mapped_column(String(8), default="Outlet")
    context: Mapped[str] = mapped_column(String(32), default="Sample.Periodic")
    unit: Mapped[str] = mapped_column(String(16), default="Wh")
    value: Mapped[Decimal] = mapped_column(Amount())
    signed_data: Mapped[str | None] = mapped_column(Text, default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
