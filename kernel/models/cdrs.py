"""Charge Detail Records: the priced, immutable outcome of a session (OCPI 2.2.1 CDR in ``data``).

Immutable: the ORM refuses updates and deletes (see :mod:`kernel.models.immutability`). A correction is a
credit CDR (negated, ``credit_of`` the original) plus a new CDR with a higher ``revision``.

Who is billed for it is recorded on it when it is made, not read from the token later: ``fleet_id``,
``driver_name`` and ``vehicle`` are the token's at that time (the session's; a credit CDR and a correction of
the same token copy their original's), with ``holder_recorded`` true. A token moved to another fleet, or given
another driver, so changes nothing about the CDRs it had (billing's fleet invoices and per-session invoices,
the portal's fleet views select and group by these columns). Rows made before these columns existed have
``holder_recorded`` false: their token's current values stand in (:mod:`kernel.domain.cdr_holder`).

Most CDRs are the hub's own (``tariffs`` prices its CPOs' sessions). A **received** CDR (``received`` true) is an
external CPO's, posted to the hub as the eMSP of one of its hosted eMSPs' tokens (:mod:`ocpi.received_cdrs`): the
CPO's object and exact price, on a session without a charger, billed to the token's fleet like any other.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base
from kernel.db.types import Amount, BigID, JSONDoc, UTCDateTime
from kernel.timeutil import utcnow


class Cdr(Base):
    __tablename__ = "cdrs"
    __table_args__ = (UniqueConstraint("session_id", "revision", "is_credit"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cdr_uid: Mapped[str] = mapped_column(String(48), unique=True)
    """The hub's own CDRs: the OCPI id they are sent with (up to 39 characters). A received CDR (``received``):
    ``COUNTRY*PARTY*ID`` of its CPO and the CPO's id upper-cased (a CiString), unique per CPO whatever the
    casing, never equal to a hub id (those have no ``*``); its OCPI id as the CPO sent it is in ``data``."""
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="RESTRICT"), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    is_credit: Mapped[bool] = mapped_column(Boolean, default=False)
    credit_of: Mapped[int | None] = mapped_column(ForeignKey("cdrs.id"), default=None)
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), index=True)
    emsp_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), default=None, index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"), default=None, index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"), default=None, index=True)
    fleet_id: Mapped[int | None] = mapped_column(ForeignKey("fleets.id"), default=None, index=True)
    """The token's fleet when the CDR was made (None: no fleet then; read only when ``holder_recorded``)."""
    driver_name: Mapped[str | None] = mapped_column(String(200), default=None)
    """The token's driver when the CDR was made."""
    vehicle: Mapped[str | None] = mapped_column(String(100), default=None)
    """The token's vehicle when the CDR was made."""
    holder_recorded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """``fleet_id``, ``driver_name`` and ``vehicle`` were recorded when the CDR was made; false on rows from
    before they were, whose token's current values stand in for them."""
    received: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """Posted by an external CPO to the hub as the eMSP of the token (:mod:`ocpi.received_cdrs`), at the CPO's
    price: never pushed to partners, settled on the eMSP side only (no hub fee, no site host share)."""
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
