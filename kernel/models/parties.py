"""Parties: every organisation the hub deals with, keyed the OCPI way (country_code + party_id + role)."""

from __future__ import annotations

import enum

from sqlalchemy import CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, enum_column


class PartyRole(enum.StrEnum):
    """OCPI roles plus the hub's own partner kinds."""

    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    SITE_HOST = "SITE_HOST"
    OTHER = "OTHER"


class Party(Timestamped, Base):
    """A CPO the hub hosts, an eMSP roaming partner, the hub itself, or a partner such as a site host."""

    __tablename__ = "parties"
    __table_args__ = (
        UniqueConstraint("country_code", "party_id", "role"),
        CheckConstraint("length(country_code) = 2", name="country_code_len"),
        CheckConstraint("length(party_id) = 3", name="party_id_len"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    role: Mapped[PartyRole] = mapped_column(enum_column(PartyRole, 16))
    name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(255), default=None)

    @property
    def key(self) -> str:
        """``NL*ABC (CPO)`` — how operators refer to a party on the CLI."""
        return f"{self.country_code}*{self.party_id}"
