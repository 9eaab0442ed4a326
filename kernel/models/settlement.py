"""Split agreements, settlement runs and the per-party statements they produce.

Agreements are versioned and immutable once stored (a change is a new version); a run that closed its period
is never rewritten (``closed_at`` is when the period closed; later CDRs settle in the next open period).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import Amount, BigID, JSONDoc, UTCDateTime


class Agreement(Timestamped, Base):
    """One version of a split agreement (roaming, hub fee, site host) as JSON of :mod:`settlement.core.agreements`."""

    __tablename__ = "agreements"
    __table_args__ = (UniqueConstraint("agreement_id", "version"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date, default=None)
    data: Mapped[dict] = mapped_column(JSONDoc)


class SettlementRun(Timestamped, Base):
    __tablename__ = "settlement_runs"
    __table_args__ = (UniqueConstraint("period", "sequence"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    period: Mapped[str] = mapped_column(String(7))
    sequence: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")
    engine: Mapped[str] = mapped_column(String(16), default="pandas")
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    cdr_count: Mapped[int] = mapped_column(default=0)
    params: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    output_dir: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class SettlementStatement(Timestamped, Base):
    __tablename__ = "settlement_statements"
    __table_args__ = (UniqueConstraint("run_id", "party", "currency"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("settlement_runs.id", ondelete="CASCADE"), index=True)
    party: Mapped[str] = mapped_column(String(64))
    party_id: Mapped[int | None] = mapped_column(
        ForeignKey("parties.id", ondelete="RESTRICT"), default=None, index=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    net: Mapped[Decimal] = mapped_column(Amount())
    vat: Mapped[Decimal] = mapped_column(Amount())
    gross: Mapped[Decimal] = mapped_column(Amount())
    content_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)


class SettlementRejection(Base):
    """A CDR a run could not settle, and why (one of :data:`settlement.core.split.REJECT_REASONS`).

    ``first_rejected_in`` is the period that first rejected it: a rejected CDR of a closed period is carried
    forward and tried again by every later run until it settles (then as an adjustment of its own period)."""

    __tablename__ = "settlement_rejections"
    __table_args__ = (UniqueConstraint("run_id", "cdr_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("settlement_runs.id", ondelete="CASCADE"), index=True)
    cdr_id: Mapped[int] = mapped_column(ForeignKey("cdrs.id", ondelete="RESTRICT"), index=True)
    reason: Mapped[str] = mapped_column(String(48))
    service_period: Mapped[str] = mapped_column(String(7))
    first_rejected_in: Mapped[str] = mapped_column(String(7))
