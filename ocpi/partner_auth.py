"""``Authorization: Token ...`` as OCPI 2.2.1 defines it (the token base64-encoded), accepting the raw token
OCPI 2.1.1 peers send (2.1.1: ``Token <token>``; the hub sends that form to them, ``ocpi.client``), and the
lookup of the partner a token belongs to (tokens are stored hashed). Either form opens either version's
routes; which module routes a partner may use is its negotiated version's (:mod:`ocpi.deps`)."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.security import hash_token
from ocpi.envelope import Unauthorized


def encode_token(token: str) -> str:
    """The value of the Authorization header for ``token`` (2.2.1: base64 of the token)."""
    return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def token_candidates(header: str | None) -> list[str]:
    """The tokens an Authorization header may carry: the base64-decoded one first, then the raw value."""
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "token" or not value.strip():
        return []
    value = value.strip()
    found: list[str] = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
        # The spec's own example encodes a trailing newline; a token never contains one.
        decoded = decoded.rstrip("\r\n")
        if decoded and decoded.isprintable():
            found.append(decoded)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    if value not in found:
        found.append(value)
    return found


async def partner_for_header(
    db_session: AsyncSession, header: str | None, *, allow_token_a: bool
) -> OcpiPartner:
    """The partner whose token the header carries; :class:`Unauthorized` (HTTP 401) otherwise.

    A token A (issued by ``evhub partners invite``) only opens versions and credentials (``allow_token_a``).
    """
    candidates = token_candidates(header)
    if not candidates:
        raise Unauthorized("Missing or malformed Authorization header")
    hashes = [hash_token(c) for c in candidates]
    partner = await db_session.scalar(select(OcpiPartner).where(OcpiPartner.incoming_token_hash.in_(hashes)))
    if partner is None or partner.status == PartnerStatus.UNREGISTERED:
        raise Unauthorized("Unknown token")
    if partner.incoming_token_kind == "A" and not allow_token_a:
        raise Unauthorized("Token A only allows the credentials registration")
    return partner
