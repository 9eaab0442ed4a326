"""The OCPI platform's own tables: partners (the other platforms), their roles, and push bookkeeping.

* :class:`OcpiPartner` — one peer platform (an eMSP, a hub...). The token the partner presents to us is only
  checked, so only its SHA-256 is stored (``incoming_token_hash``); the token we present to the partner must be
  sent, so it is kept sealed (encrypted with ``EVHUB_SECRETS_KEY``, :mod:`kernel.sealed`) in the column
  ``outgoing_token`` (attribute ``outgoing_token_sealed``); ``partner.outgoing_token`` reads and writes it
  in plain text. ``incoming_token_kind`` is ``A`` while only the credentials
  handshake is allowed and ``C`` once registered.
* :class:`OcpiPartnerRole` — each role the partner carries (country_code + party_id + role), linked to a
  :class:`~kernel.models.Party` so tokens, sessions and CDRs can be attributed to it (``emsp_id``).
* :class:`OcpiPushState` — what was last pushed of an object to a partner (PUT first, then PATCH with only new
  charging periods).
* :class:`OcpiPendingCommand` — a command (or charging-profile request) accepted from a partner and waiting for
  the charger's answer: where and when its result must go, so a restart cannot lose it.
* :class:`OcpiAuthorization` — an ``authorization_reference`` given by an eMSP (real-time authorization or
  START_SESSION) waiting for the session it belongs to.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kernel import sealed
from kernel.db.base import Base, Timestamped
from kernel.db.types import BigID, JSONDoc, UTCDateTime, enum_column


class PartnerStatus(enum.StrEnum):
    INVITED = "invited"  # token A issued, waiting for the partner to register
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"


class OcpiPartner(Timestamped, Base):
    __tablename__ = "ocpi_partners"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[PartnerStatus] = mapped_column(
        enum_column(PartnerStatus, 16), default=PartnerStatus.INVITED
    )
    version: Mapped[str | None] = mapped_column(String(16), default=None)
    versions_url: Mapped[str | None] = mapped_column(String(255), default=None)
    incoming_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    incoming_token_kind: Mapped[str] = mapped_column(String(1), default="A")
    outgoing_token_sealed: Mapped[str | None] = mapped_column("outgoing_token", String(512), default=None)
    """The token we present to the partner, sealed (``v1:...``; plain text if stored before sealing)."""
    endpoints: Mapped[list] = mapped_column(JSONDoc, default=list)
    credentials_roles: Mapped[list] = mapped_column(JSONDoc, default=list)
    allowed_cpo_ids: Mapped[list | None] = mapped_column(JSONDoc, default=None)
    client_info: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    tokens_pulled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    roles: Mapped[list[OcpiPartnerRole]] = relationship(
        back_populates="partner", cascade="all, delete-orphan", lazy="selectin", order_by="OcpiPartnerRole.id"
    )

    @property
    def outgoing_token(self) -> str | None:
        """The token we present to the partner, unsealed; :class:`~kernel.sealed.UnsealError` (naming this
        partner and EVHUB_SECRETS_KEY, never the token) when no configured key opens it."""
        stored = self.outgoing_token_sealed
        if stored is None:
            return None
        return sealed.keyring().unseal(stored, f"outgoing token of OCPI partner {self.id} ({self.name!r})")

    @outgoing_token.setter
    def outgoing_token(self, token: str | None) -> None:
        self.outgoing_token_sealed = None if token is None else sealed.keyring().seal(token)

    def reseal(self) -> bool:
        """Seal the outgoing token anew with the first key if it is plain (stored before sealing) or sealed with
        an older key; True when it changed."""
        stored = self.outgoing_token_sealed
        if stored is None or not sealed.keyring().needs_reseal(stored):
            return False
        self.outgoing_token = self.outgoing_token
        return True

    def endpoint(self, identifier: str, role: str = "RECEIVER") -> str | None:
        """URL of the partner's ``identifier`` module interface in ``role`` (None when it has none)."""
        for ep in self.endpoints or []:
            if ep.get("identifier") == identifier and ep.get("role", role) == role:
                return ep.get("url")
        return None


class OcpiPartnerRole(Base):
    __tablename__ = "ocpi_partner_roles"
    __table_args__ = (UniqueConstraint("country_code", "party_id", "role"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("ocpi_partners.id", ondelete="CASCADE"), index=True)
    party_pk: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="RESTRICT"), index=True)
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    role: Mapped[str] = mapped_column(String(16))

    partner: Mapped[OcpiPartner] = relationship(back_populates="roles")


class OcpiPushState(Timestamped, Base):
    __tablename__ = "ocpi_push_state"
    __table_args__ = (UniqueConstraint("partner_id", "kind", "object_key"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("ocpi_partners.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    object_key: Mapped[str] = mapped_column(String(120))
    periods_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[str | None] = mapped_column(String(32), default=None)


class CommandState(enum.StrEnum):
    PENDING = "pending"  # waiting for the charger (or for the recovery job after a restart)
    SENT = "sent"  # the result is in the outbox


class OcpiPendingCommand(Timestamped, Base):
    """One accepted command. ``result`` is the answer when known; ``deadline`` = accepted + ``timeout``.
    A row leaves ``pending`` exactly once (compare-and-set), together with the outbox row of its result."""

    __tablename__ = "ocpi_pending_commands"
    __table_args__ = (Index("ix_ocpi_pending_commands_state_deadline", "state", "deadline"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("ocpi_partners.id", ondelete="CASCADE"), index=True)
    module: Mapped[str] = mapped_column(String(32), default="commands")
    command: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(255), default=None)
    response_url: Mapped[str] = mapped_column(Text)
    routing: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    timeout: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[CommandState] = mapped_column(enum_column(CommandState, 16), default=CommandState.PENDING)
    result: Mapped[dict | None] = mapped_column(JSONDoc, default=None)


class OcpiAuthorization(Timestamped, Base):
    """An eMSP's ``authorization_reference`` for a token at a location, until a session takes it."""

    __tablename__ = "ocpi_authorizations"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    token_uid: Mapped[str] = mapped_column(String(36), index=True)
    token_type: Mapped[str] = mapped_column(String(16), default="RFID")
    location_pk: Mapped[int | None] = mapped_column(
        ForeignKey("locations.id", ondelete="CASCADE"), default=None, index=True
    )
    evse_uid: Mapped[str | None] = mapped_column(String(36), default=None)
    authorization_reference: Mapped[str] = mapped_column(String(36))
    source: Mapped[str] = mapped_column(String(16))  # realtime | command
    session_pk: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL"), default=None, index=True
    )


# The session reference hook finds a token's references by upper(token_uid) (a CiString).
Index("ix_ocpi_authorizations_token_uid_upper", func.upper(OcpiAuthorization.token_uid))


async def reseal_outgoing_tokens(db_session: AsyncSession) -> int:
    """Seal every partner's outgoing token with the first key of ``EVHUB_SECRETS_KEY`` where it is plain or
    sealed with an older key (run at hub start: after a rotation, or on rows stored before sealing); the number
    of rows rewritten. :class:`~kernel.sealed.UnsealError` when a token opens with none of the keys."""
    partners = await db_session.scalars(
        select(OcpiPartner).where(OcpiPartner.outgoing_token_sealed.is_not(None)).order_by(OcpiPartner.id)
    )
    return sum(partner.reseal() for partner in partners)
