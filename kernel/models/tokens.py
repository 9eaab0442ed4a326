"""Tokens: RFID cards and app identities that start sessions — the hub's fleet tokens and eMSPs' roaming tokens.

Keyed as OCPI keys them: country_code + party_id of the issuer, uid, type.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import Amount, BigID, JSONDoc, UTCDateTime

TOKEN_TYPES = ("AD_HOC_USER", "APP_USER", "OTHER", "RFID")
WHITELIST_TYPES = ("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER")


class Token(Timestamped, Base):
    __tablename__ = "tokens"
    __table_args__ = (
        UniqueConstraint("country_code", "party_id", "uid", "type"),
        CheckConstraint("(monthly_limit IS NULL) = (limit_currency IS NULL)", name="limit_has_currency"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    uid: Mapped[str] = mapped_column(String(36), index=True)
    type: Mapped[str] = mapped_column(String(16), default="RFID")
    contract_id: Mapped[str] = mapped_column(String(36))
    visual_number: Mapped[str | None] = mapped_column(String(64), default=None)
    issuer: Mapped[str] = mapped_column(String(64))
    emsp_id: Mapped[int | None] = mapped_column(
        ForeignKey("parties.id", ondelete="RESTRICT"), default=None, index=True
    )
    fleet_id: Mapped[int | None] = mapped_column(
        ForeignKey("fleets.id", ondelete="SET NULL"), default=None, index=True
    )
    driver_name: Mapped[str | None] = mapped_column(String(200), default=None)
    driver_email: Mapped[str | None] = mapped_column(String(254), default=None)
    vehicle: Mapped[str | None] = mapped_column(String(100), default=None)
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    whitelist: Mapped[str] = mapped_column(String(16), default="ALLOWED")
    language: Mapped[str | None] = mapped_column(String(2), default=None)
    monthly_limit: Mapped[Decimal | None] = mapped_column(Amount(), default=None)
    limit_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime())
