"""OCPI token uid <-> OCPP idTag: the idTag the hub sends a charger for an OCPI token.

OCPI 2.2.1 token uids are ``CiString(36)``; OCPP 1.6's idTag is ``CiString20Type`` (and 2.0.1's
``IdTokenType.idToken`` is ``identifierString`` of 36, so 2.0.1 needs no mapping). A uid of at most 20
characters is sent as it is. A longer uid is sent as ``EVH`` + the first 17 hex digits (upper case) of
SHA-256 over ``COUNTRY*PARTY*UID`` (all three upper-cased: CiStrings), 20 characters in all. The form is
deterministic, so the same token always reaches a charger as the same idTag (the charger's local
authorization cache and list keep working), and the hub resolves it back through ``tokens.ocpp16_id_tag``,
the mapped form stored with each token whose uid is longer (:func:`is_mapped`, :func:`ocpp16_id_tag`).
Pure: no I/O.
"""

from __future__ import annotations

import hashlib

OCPP16_ID_TAG_LENGTH = 20  # OCPP 1.6 IdToken: CiString20Type
MAPPED_PREFIX = "EVH"
_HEX = frozenset("0123456789ABCDEF")


def ocpp16_id_tag(country_code: str, party_id: str, uid: str) -> str:
    """The idTag a 1.6 charger gets for the OCPI token (``country_code``, ``party_id``, ``uid``)."""
    if len(uid) <= OCPP16_ID_TAG_LENGTH:
        return uid
    key = f"{country_code.upper()}*{party_id.upper()}*{uid.upper()}".encode()
    digits = OCPP16_ID_TAG_LENGTH - len(MAPPED_PREFIX)
    return MAPPED_PREFIX + hashlib.sha256(key).hexdigest()[:digits].upper()


def id_tag_for(version: str, country_code: str, party_id: str, uid: str) -> str:
    """The id tag sent to a charger speaking OCPP ``version`` (``"1.6"`` maps, 2.0.1 takes the uid)."""
    return ocpp16_id_tag(country_code, party_id, uid) if version == "1.6" else uid


def is_mapped(id_tag: str) -> bool:
    """Whether ``id_tag`` has the shape of a mapped uid (``EVH`` + 17 hex digits, in any case)."""
    tag = id_tag.upper()
    return (
        len(tag) == OCPP16_ID_TAG_LENGTH
        and tag.startswith(MAPPED_PREFIX)
        and set(tag[len(MAPPED_PREFIX) :]) <= _HEX
    )
