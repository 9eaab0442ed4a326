"""Charging sessions and their meter values — what the gateway makes of the chargers' transactions.

Idempotency keys: a session is unique per (charge point, charger transaction id); a meter value is unique per
(session, timestamp, measurand, phase, location, context), so a replayed message never adds a row twice.
A session that ended waits in ``pricing_state = 'pending'`` until the tariffs engine prices it: the hand-off
goes through the database, never through memory. A session without a charger (``charge_point_id`` None) ran at an
external CPO that posted its CDR to the hub as its eMSP: it is stored ``priced``, as the anchor of that CDR.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import Amount, BigID, JSONDoc, UTCDateTime, enum_column


class SessionStatus(enum.StrEnum):
    """OCPI 2.2.1 session status."""

    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class PricingState(enum.StrEnum):
    """Where a session stands in the hand-off to pricing."""

    NOT_READY = "not_ready"
    PENDING = "pending"
    PRICED = "priced"
    FAILED = "failed"
    HELD = "held"
    """Implausible or incomplete (``review_reason`` says why): never priced nor pushed until an operator
    releases it (``evhub sessions release``)."""
    REPRICE = "reprice"
    """Priced, but its inputs changed since (late or out-of-order data): the rating worker re-derives the CDR
    and, when it differs, issues a credit and a new revision."""


class ChargingSession(Timestamped, Base):
    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("charge_point_id", "transaction_id"),
        UniqueConstraint("charge_point_id", "start_key", name="uq_sessions_start_key"),
        Index("ix_sessions_pricing_pending", "pricing_state"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    session_uid: Mapped[str] = mapped_column(String(36), unique=True)
    charge_point_id: Mapped[int | None] = mapped_column(
        ForeignKey("charge_points.id", ondelete="RESTRICT"), default=None
    )
    """The hub's charger the session ran on; None for a session at an external CPO, known to the hub only from
    the CDR that CPO posted (the hub is its eMSP: :mod:`ocpi.received_cdrs`), which is never priced nor pushed."""
    transaction_id: Mapped[str] = mapped_column(String(64))
    cpo_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"), default=None, index=True)
    evse_pk: Mapped[int | None] = mapped_column(ForeignKey("evses.id"), default=None)
    connector_pk: Mapped[int | None] = mapped_column(ForeignKey("connectors.id"), default=None)
    ocpp_evse_id: Mapped[int | None] = mapped_column(Integer, default=None)
    ocpp_connector_id: Mapped[int | None] = mapped_column(Integer, default=None)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id"), default=None, index=True)
    id_tag: Mapped[str | None] = mapped_column(String(36), default=None)
    fleet_id: Mapped[int | None] = mapped_column(ForeignKey("fleets.id"), default=None)
    """The token's fleet when the session started (read only when ``holder_recorded``)."""
    driver_name: Mapped[str | None] = mapped_column(String(200), default=None)
    """The token's driver when the session started."""
    vehicle: Mapped[str | None] = mapped_column(String(100), default=None)
    """The token's vehicle when the session started."""
    holder_recorded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """The gateway recorded ``fleet_id``, ``driver_name`` and ``vehicle`` of the token it authorized the
    session with, when the session started (:mod:`kernel.domain.cdr_holder`): its CDRs are billed to them. False
    for a session started without a known token, and rows from before they were recorded."""
    auth_method: Mapped[str] = mapped_column(String(16), default="WHITELIST")
    status: Mapped[SessionStatus] = mapped_column(
        enum_column(SessionStatus, 16), default=SessionStatus.ACTIVE
    )
    start_time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    meter_start_wh: Mapped[Decimal | None] = mapped_column(Amount(), default=None)
    meter_stop_wh: Mapped[Decimal | None] = mapped_column(Amount(), default=None)
    energy_wh: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    stop_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    flags: Mapped[list] = mapped_column(JSONDoc, default=list)
    signed_meter_data: Mapped[str | None] = mapped_column(Text, default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    pricing_state: Mapped[PricingState] = mapped_column(
        enum_column(PricingState, 16), default=PricingState.NOT_READY
    )
    pricing_error: Mapped[str | None] = mapped_column(Text, default=None)
    price_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """Rating waits until then (grace for late or out-of-order data); None: at once."""
    review_reason: Mapped[str | None] = mapped_column(Text, default=None)
    """Why the session is ``HELD`` (implausible clock, energy beyond the EVSE's power, no meter start...)."""
    start_key: Mapped[str | None] = mapped_column(String(96), default=None)
    """OCPP 1.6 only: ``connectorId|timestamp|IDTAG`` of the StartTransaction, unique per charger, so a start
    resent on another connection finds its session instead of creating a second one."""
    meter_public_key: Mapped[str | None] = mapped_column(Text, default=None)
    """The public key the charger sent with its signed meter values (OCPP 2.0.1 ``publicKey``)."""
    signed_verification: Mapped[str | None] = mapped_column(String(16), default=None)
    """Outcome of verifying the signed meter data: ``verified``, ``unverifiable`` or ``invalid``."""
    signed_verification_reason: Mapped[str | None] = mapped_column(Text, default=None)
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# OCPI compares session ids (CiString(36)) in upper case: GET by id, STOP_SESSION.
Index("ix_sessions_session_uid_upper", func.upper(ChargingSession.session_uid))


class MeterValue(Base):
    """One sampled value of a session, at the charger's own timestamp.

    An append-only time series, the gateway's hottest table, so it is kept lean (see docs/gateway.md,
    "Storage of meter values"): its natural key (session_id, timestamp, measurand, phase, location, context)
    is the primary key — it makes replays idempotent and serves every "samples of a session in time order"
    query — and there is no surrogate id. ``session_id`` carries no foreign-key constraint: PostgreSQL checks
    one with a trigger and a row lock on ``sessions`` per inserted row, which cost as much as the insert
    itself. Only the gateway writes this table, always for a session it has just loaded or created, and
    sessions are never deleted (CDRs and settlement refer to them)."""

    __tablename__ = "meter_values"

    session_id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=False)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    measurand: Mapped[str] = mapped_column(
        String(48), primary_key=True, default="Energy.Active.Import.Register"
    )
    phase: Mapped[str] = mapped_column(String(8), primary_key=True, default="")
    location: Mapped[str] = mapped_column(String(8), primary_key=True, default="Outlet")
    context: Mapped[str] = mapped_column(String(32), primary_key=True, default="Sample.Periodic")
    unit: Mapped[str] = mapped_column(String(16), default="Wh")
    value: Mapped[Decimal] = mapped_column(Amount())
    signed_data: Mapped[str | None] = mapped_column(Text, default=None)
