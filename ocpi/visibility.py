"""Who may see a Location: ``publish`` and ``publish_allowed_to`` (OCPI 2.2.1 Locations, PublishTokenType).

A published location (``publish: true``) is for every partner that may see its CPO. A location with
``publish: false`` "SHALL not be shown ... unless it is to the owner of a Token in the ``publish_allowed_to``
list"; only owners of tokens that "match all the set fields of one PublishToken" may be shown it. The hub
applies that at the source: an unpublished location goes (GET and pushes) only to an eMSP that issued at least
one token matching an entry — every field the entry sets must match the token: ``uid`` (case-insensitive, a
CiString) and ``type``, ``visual_number`` and ``issuer`` (exact strings), ``group_id`` (case-insensitive). An
entry that sets none of ``uid``, ``visual_number``, ``group_id`` is invalid and matches nothing; an unpublished
location without ``publish_allowed_to`` goes to nobody. The copy an eMSP receives lists only the entries that
match its own tokens (another eMSP's token identifiers are not disclosed).

The same rule decides which locations an eMSP may name in a command (:mod:`ocpi.modules.commands`):
:func:`may_see` adds the partner's roaming agreements (``allowed_cpo_ids``) to :func:`location_view`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Location, Token

IDENTIFYING = ("uid", "visual_number", "group_id")


def publish_allowed_to(loc: Location) -> list[dict[str, Any]]:
    entries = (loc.data or {}).get("publish_allowed_to") or []
    return [e for e in entries if isinstance(e, dict)]


def _conditions(entry: dict[str, Any]) -> list[Any] | None:
    if not any(entry.get(k) for k in IDENTIFYING):
        return None
    conds: list[Any] = []
    if entry.get("uid"):
        conds.append(Token.uid_key == str(entry["uid"]).upper())
    if entry.get("type"):
        conds.append(Token.type == entry["type"])
    if entry.get("visual_number"):
        conds.append(Token.visual_number == entry["visual_number"])
    if entry.get("issuer"):
        conds.append(Token.issuer == entry["issuer"])
    if entry.get("group_id"):
        conds.append(func.upper(Token.data["group_id"].as_string()) == str(entry["group_id"]).upper())
    return conds


async def matching_entries(db_session: AsyncSession, loc: Location, party_pks: Iterable[int]) -> list[dict]:
    """The ``publish_allowed_to`` entries that match a token issued by one of ``party_pks``."""
    pks = [pk for pk in party_pks if pk is not None]
    if not pks:
        return []
    found = []
    for entry in publish_allowed_to(loc):
        conds = _conditions(entry)
        if conds is None:
            continue
        hit = await db_session.scalar(select(Token.id).where(Token.emsp_id.in_(pks), *conds).limit(1))
        if hit is not None:
            found.append(entry)
    return found


async def location_view(
    db_session: AsyncSession, loc: Location, party_pks: Iterable[int]
) -> tuple[bool, list[dict] | None]:
    """(may the parties see ``loc``, the ``publish_allowed_to`` entries to send them — None: as stored)."""
    if loc.publish:
        return True, None
    entries = await matching_entries(db_session, loc, party_pks)
    return bool(entries), entries


async def may_see(
    db_session: AsyncSession,
    loc: Location,
    party_pks: Iterable[int],
    allowed_cpo_ids: Iterable[int] | None = None,
) -> bool:
    """May the parties see ``loc`` at all: its CPO is one the partner has an agreement with
    (``allowed_cpo_ids``, None: every hosted CPO) and :func:`location_view` shows it to them."""
    if allowed_cpo_ids is not None and loc.cpo_id not in set(allowed_cpo_ids):
        return False
    visible, _ = await location_view(db_session, loc, party_pks)
    return visible


def shape(body: dict[str, Any], entries: list[dict] | None) -> dict[str, Any]:
    """The location object for one recipient: its own matching entries only (none: the field is left out)."""
    if entries is None:
        return body
    body = dict(body)
    if entries:
        body["publish_allowed_to"] = entries
    else:
        body.pop("publish_allowed_to", None)
    return body


async def visible_unpublished(
    db_session: AsyncSession, cpo_id: int, party_pks: Iterable[int]
) -> dict[int, list]:
    """Unpublished locations of ``cpo_id`` the parties may see: location pk -> their matching entries."""
    pks = list(party_pks)
    rows = (
        await db_session.scalars(
            select(Location).where(Location.cpo_id == cpo_id, Location.publish.is_(False))
        )
    ).all()
    out: dict[int, list] = {}
    for loc in rows:
        entries = await matching_entries(db_session, loc, pks)
        if entries:
            out[loc.id] = entries
    return out
