"""API keys of the operators' REST API (``/api``): a hub operator key sees everything, a CPO key only that
CPO's chargers, locations, tariffs and statements. Only the key's SHA-256 is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, UTCDateTime


class ApiKey(Timestamped, Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    cpo_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"), default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
