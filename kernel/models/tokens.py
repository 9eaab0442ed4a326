"""Tokens: RFID cards and app identities that start sessions — the hub's fleet tokens and eMSPs' roaming tokens.

Keyed as OCPI keys them: country_code + party_id of the issuer, uid, type. The uid is a CiString
(case-insensitive): ``uid_key`` is its upper-cased form, indexed, for lookups whatever the casing; and
``ocpp16_id_tag`` is the idTag an OCPP 1.6 charger gets for a uid too long for one
(:func:`kernel.id_tags.ocpp16_id_tag`), indexed, so a charger's tag finds its token in one lookup.
Both are derived from the row on every insert and update (the mapper events below), never written by hand.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import Amount, BigID, JSONDoc, UTCDateTime
from kernel.id_tags import OCPP16_ID_TAG_LENGTH, ocpp16_id_tag

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
    uid_key: Mapped[str] = mapped_column(String(36), index=True, default="")
    """``uid`` upper-cased: the CiString lookup key."""
    ocpp16_id_tag: Mapped[str | None] = mapped_column(String(20), index=True, default=None)
    """The idTag a 1.6 charger gets for a uid longer than 20 characters; None when the uid itself fits."""
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


@event.listens_for(Token, "before_insert")
@event.listens_for(Token, "before_update")
def _derive_lookup_keys(_mapper: Any, _connection: Any, token: Token) -> None:
    """Keep ``uid_key`` and ``ocpp16_id_tag`` in step with the uid and its issuer."""
    token.uid_key = token.uid.upper()
    token.ocpp16_id_tag = (
        ocpp16_id_tag(token.country_code, token.party_id, token.uid)
        if len(token.uid) > OCPP16_ID_TAG_LENGTH
        else None
    )
