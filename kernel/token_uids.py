"""Token uid ownership (issue 13): a token uid belongs to ONE issuing party across the hub.

OCPI keys a token by (country_code, party_id, uid, type), but a charger presents only the uid (OCPP's idTag /
idToken), so two issuers holding the same uid would make the hub guess whose card is at the charger. The rule:

* **What a charger may present** for a token: its uid's CiString key (``tokens.uid_key``, upper-cased) and, for
  a uid longer than OCPP 1.6's idTag, its mapped idTag (``tokens.ocpp16_id_tag``, :mod:`kernel.id_tags`).
* **The holder** of such a key is the issuer (country_code, party_id) of the first stored row (lowest id) that
  presents it. Every store of a token (OCPI PUT/PATCH, the tokens pull, a START_SESSION/RESERVE_NOW token,
  ``evhub tokens add``, the portal) first claims its keys (:func:`claim`): another issuer holding one is
  refused with :class:`UidTaken` (its message names the uid, never the other issuer), logged (warning) and
  counted (``evhub_token_uid_collisions_total``, by source).
* **Concurrent claims** of one key by two issuers never both win: on PostgreSQL the claim takes a transaction
  advisory lock per key before it looks, so the second waits for the first's commit and then sees its row;
  SQLite transactions begin IMMEDIATE (:mod:`kernel.db.engine`), which serialises writers already.
* **Rows stored before the rule** (several issuers per key): :func:`holder_rows` keeps the holder's rows, so
  the token stored first decides an authorization (a later intruder never captures the session, and the
  owner's block holds); the ambiguity is logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.id_tags import OCPP16_ID_TAG_LENGTH, ocpp16_id_tag
from kernel.metrics import TOKEN_UID_COLLISIONS
from kernel.models import Token

log = logging.getLogger(__name__)


class UidTaken(ValueError):
    """A token whose uid another issuer holds; the message names the uid, not the other issuer."""

    def __init__(self, uid: str) -> None:
        super().__init__(f"token uid {uid!r} is already issued by another party on this hub")
        self.uid = uid


def issuer(token: Token) -> tuple[str, str]:
    return token.country_code.upper(), token.party_id.upper()


def presented_keys(country_code: str, party_id: str, uid: str) -> list[str]:
    """What a charger may present for this token, upper-cased: the uid, and its 1.6 idTag when mapped."""
    keys = [uid.upper()]
    if len(uid) > OCPP16_ID_TAG_LENGTH:
        keys.append(ocpp16_id_tag(country_code, party_id, uid))
    return keys


def _matching(keys: Sequence[str]) -> ColumnElement[bool]:
    return or_(Token.uid_key.in_(keys), Token.ocpp16_id_tag.in_(keys))


def _lock_id(key: str) -> int:
    """A signed 64-bit advisory lock id for a key (namespaced, so no other lock of the hub shares it)."""
    digest = hashlib.sha256(b"evhub:token-uid:" + key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _serialise(db_session: AsyncSession, keys: Sequence[str]) -> None:
    if db_session.get_bind().dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE, one writer at a time
    for lock_id in sorted({_lock_id(k) for k in keys}):  # a fixed order: two claims never deadlock
        await db_session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


async def holder(db_session: AsyncSession, keys: Sequence[str]) -> tuple[str, str] | None:
    """The issuer of the first stored token presenting one of ``keys`` (upper-cased), None if none does."""
    first = await db_session.scalar(select(Token).where(_matching(keys)).order_by(Token.id).limit(1))
    return issuer(first) if first is not None else None


async def claim(db_session: AsyncSession, country_code: str, party_id: str, uid: str, *, source: str) -> None:
    """Make sure issuer ``country_code``/``party_id`` may store a token with ``uid``; :class:`UidTaken` when
    another issuer holds it. Call it in the transaction that stores the token (the lock lasts until its end).
    ``source`` (``ocpi``, ``tokens_pull``, ``command``, ``cli``, ``portal``) labels the metric."""
    keys = presented_keys(country_code, party_id, uid)
    await _serialise(db_session, keys)
    held = await holder(db_session, keys)
    if held is not None and held != (country_code.upper(), party_id.upper()):
        TOKEN_UID_COLLISIONS.labels(source).inc()
        log.warning(
            "token uid %s of %s*%s refused (%s): the uid is held by another issuer",
            uid,
            country_code.upper(),
            party_id.upper(),
            source,
        )
        raise UidTaken(uid)


def holder_rows(tokens: Sequence[Token], presented: str) -> list[Token]:
    """Of ``tokens`` (the rows presenting ``presented``, in id order), those of the holder: the issuer of the
    first. Rows of other issuers (stored before the ownership rule) are left out, and logged."""
    if not tokens:
        return []
    first = issuer(tokens[0])
    rows = [t for t in tokens if issuer(t) == first]
    if len(rows) < len(tokens):
        others = sorted({"*".join(issuer(t)) for t in tokens} - {"*".join(first)})
        log.warning(
            "token uid %s is held by several issuers: %s*%s (stored first) decides, not %s",
            presented,
            first[0],
            first[1],
            ", ".join(others),
        )
    return rows
