"""The OCPI 2.2.1 ``CdrToken`` of a session: who charged, as the Session and the CDR both show it."""

from __future__ import annotations

from typing import Any

from kernel.models import ChargingSession, Token

UNKNOWN_COUNTRY, UNKNOWN_PARTY = "ZZ", "ZZZ"
"""Placeholders for a session whose token the hub does not know (stored, flagged, never dropped)."""


def cdr_token(token: Token | None, session: ChargingSession) -> dict[str, Any]:
    """The token as OCPI's CdrToken; for an unknown token, the charger's id tag with placeholder issuer."""
    if token is None:
        return {
            "country_code": UNKNOWN_COUNTRY,
            "party_id": UNKNOWN_PARTY,
            "uid": session.id_tag or "unknown",
            "type": "OTHER",
            "contract_id": session.id_tag or "unknown",
        }
    return {
        "country_code": token.country_code,
        "party_id": token.party_id,
        "uid": token.uid,
        "type": token.type,
        "contract_id": token.contract_id,
    }
