"""Charge Detail Records: the priced, immutable outcome of a session (OCPI 2.2.1 CDR in ``data``).

Immutable: the ORM refuses updates and deletes (see :mod:`kernel.models.immutability`). A correction is a
credit CDR (negated, ``credit_of`` the original) plus a new CDR with a higher ``revision``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base
from kernel.db.types import Amount, BigID, JSONDoc, UTCDateTime
from kernel.timeutil import utcnow


class Cdr(Base):
    __tablename__ = "cdrs"
    __table_args__ = (UniqueConstraint("session_id", "revision", "is_credit"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cdr_uid: Mapped[str] = mapped_column(String(39), unique=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="RESTRICT"), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    is_credit: Mapped[bool] = mapped_column(Boolean, default=False)
    credit_of: Mapped[int | None] = mapped_column(ForeignKey("cdrs.id"), default=None)
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), index=True)
    emsp_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), default=None, index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"), default=None, index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"), default=None, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    start_date_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_date_time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    total_energy_kwh: Mapped[Decimal] = mapped_column(Amount())
    total_time_hours: Mapped[Decimal] = mapped_column(Amount())
    total_cost_excl_vat: Mapped[Decimal] = mapped_column(Amount())
    total_cost_incl_vat: Mapped[Decimal | None] = mapped_column(Amount(), default=None)
    tariff_versions: Mapped[list] = mapped_column(JSONDoc, default=list)
    explanation: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    data: Mapped[dict] = mapped_column(JSONDoc)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# OCPI compares CDR ids (CiString(39)) in upper case: GET by id.
Index("ix_cdrs_cdr_uid_upper", func.upper(Cdr.cdr_uid))
