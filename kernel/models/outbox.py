"""The durable outbox: everything the hub must deliver later (OCPI pushes, emails), written in the same
transaction as the change that causes it, and delivered at least once, in order per ``ordering_key`` (at
most once for a channel whose sender marks ``result.sending`` first: e-mail; see :func:`kernel.outbox.mark_sending`).

``dedupe_key`` makes enqueueing idempotent; a delivered row is never sent again. A ``parked`` row is not retried
by itself (``parked_reason`` says why) and keeps blocking the later rows of its ordering key until an operator or
a re-sync releases or supersedes it; a ``superseded`` row was closed unsent (``result`` names what replaced it).

``priority`` (:class:`OutboxPriority`, lower first) is the order the dispatcher claims due rows in, before their
due time: what a person or a real-time exchange waits for (receipts, payments, dunning e-mails, command results)
goes before bulk state pushes (locations, tariffs, sessions), so a backlog of pushes never delays a receipt.
``coalesced`` counts the later messages merged into a row that was never tried (OCPI PATCHes of one object:
:func:`kernel.outbox.coalesce`); the dispatcher's claim checks it, so it never leases a row whose payload it read
before a merge.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, SmallInteger, String, Text
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


class OutboxPriority(enum.IntEnum):
    """The claim order of outbox rows (lower first; the due time orders rows of one priority)."""

    URGENT = 0  # a person or a real-time exchange waits: receipts, payments, dunning e-mails, command results
    NORMAL = 5  # records each delivered once, not waited for in real time: CDRs, token states
    BULK = 9  # state pushes a newer one may replace: locations, EVSE statuses, tariffs, sessions


class OutboxMessage(Timestamped, Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "priority", "next_attempt_at"),
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
    priority: Mapped[int] = mapped_column(SmallInteger, default=int(OutboxPriority.URGENT))
    coalesced: Mapped[int] = mapped_column(Integer, default=0)  # later messages merged into this unsent row
