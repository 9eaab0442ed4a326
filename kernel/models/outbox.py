"""The durable outbox: everything the hub must deliver later (OCPI pushes, emails), written in the same
transaction as the change that causes it, and delivered at least once, in order per ``ordering_key`` (at
most once for a channel whose sender marks ``result.sending`` first: e-mail; see :func:`kernel.outbox.mark_sending`).

``dedupe_key`` makes enqueueing idempotent; a delivered row is never sent again. A ``parked`` row is not retried
by itself (``parked_reason`` says why) and keeps blocking the later rows of its ordering key until an operator or
a re-sync releases or supersedes it; a ``superseded`` row was closed unsent (``result`` names what replaced it).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, JSONDoc, UTCDateTime, enum_column
from kernel.timeutil import utcnow


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    PARKED = "parked"
    SUPERSEDED = "superseded"
    DEAD = "parked"  # the former name of PARKED (an alias: the same member)


class OutboxMessage(Timestamped, Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_ordering", "channel", "ordering_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(255))
    ordering_key: Mapped[str] = mapped_column(String(255))
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    payload: Mapped[dict] = mapped_column(JSONDoc)
    status: Mapped[OutboxStatus] = mapped_column(enum_column(OutboxStatus, 16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    result: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # when the current run of failed attempts began (None: the last attempt succeeded or none was made)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    parked_reason: Mapped[str | None] = mapped_column(Text, default=None)
