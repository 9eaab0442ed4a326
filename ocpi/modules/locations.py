"""Locations, Sender interface: list (paginated) and single Location / EVSE / Connector.

Published locations of the addressed CPO are visible, unpublished ones only to an eMSP owning a token their
``publish_allowed_to`` lists (:mod:`ocpi.visibility`); EVSE status is live from the gateway.

Location ``id``, EVSE ``uid`` and connector ``id`` are CiString(36) (OCPI 2.2.1, "case-insensitive"): the path's
ids are compared in upper case, so ``loc1`` names the location ``LOC1``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from kernel.models import EVSE, Location, Party
from ocpi import status
from ocpi.deps import Caller, caller
from ocpi.envelope import NotFound, ok
from ocpi.pagination import paginate
from ocpi.render_objects import connector_object, evse_object, location_object
from ocpi.visibility import shape, visible_unpublished

router = APIRouter()


async def visible_locations(
    db_session: AsyncSession, cpo_ids: list[int], party_pk: int
) -> tuple[Select[Any], dict[int, list]]:
    """(the locations of ``cpo_ids`` eMSP ``party_pk`` may see, its matching ``publish_allowed_to`` entries
    by unpublished location pk). Shared with the 2.1.1 routes (:mod:`ocpi.modules.v211.locations`)."""
    hidden: dict[int, list] = {}
    for cpo_id in cpo_ids:
        hidden.update(await visible_unpublished(db_session, cpo_id, [party_pk]))
    shown: ColumnElement[bool] = Location.publish.is_(True)
    if hidden:
        shown = or_(shown, Location.id.in_(list(hidden)))
    query = (
        select(Location)
        .where(Location.cpo_id.in_(cpo_ids), shown)
        .options(selectinload(Location.evses).selectinload(EVSE.connectors))
    )
    return query, hidden


async def _visible(c: Caller) -> tuple[Select[Any], dict[int, list]]:
    return await visible_locations(c.db_session, [c.cpo.id], c.role.party_pk)


def visible_object(loc: Location, cpo: Party, hidden: dict[int, list]) -> dict[str, Any]:
    """The 2.2.1 Location as this recipient sees it (its own ``publish_allowed_to`` entries only)."""
    return shape(location_object(loc, cpo), None if loc.publish else hidden.get(loc.id, []))


def _object(loc: Location, c: Caller, hidden: dict[int, list]) -> dict[str, Any]:
    return visible_object(loc, c.cpo, hidden)


@router.get("")
@router.get("/")
async def list_locations(request: Request, c: Caller = Depends(caller)):
    query, hidden = await _visible(c)
    rows, headers = await paginate(
        c.db_session, request, query, Location.last_updated, Location.id, c.platform.max_limit
    )
    return ok([_object(loc, c, hidden) for loc in rows], headers=headers)


async def _location(c: Caller, location_id: str) -> tuple[Location, dict[int, list]]:
    query, hidden = await _visible(c)
    loc = await c.db_session.scalar(query.where(func.upper(Location.ocpi_id) == location_id.upper()))
    if loc is None:
        raise NotFound(f"Unknown location {location_id}", code=status.UNKNOWN_LOCATION)
    return loc, hidden


def _same(stored: str, given: str) -> bool:
    """CiString equality."""
    return stored.upper() == given.upper()


def _evse(loc: Location, evse_uid: str) -> EVSE | None:
    return next((e for e in loc.evses if _same(e.uid, evse_uid)), None)


@router.get("/{location_id}")
async def get_location(location_id: str, c: Caller = Depends(caller)):
    loc, hidden = await _location(c, location_id)
    return ok(_object(loc, c, hidden))


@router.get("/{location_id}/{evse_uid}")
async def get_evse(location_id: str, evse_uid: str, c: Caller = Depends(caller)):
    loc, _ = await _location(c, location_id)
    evse = _evse(loc, evse_uid)
    if evse is None:
        raise NotFound(f"Unknown EVSE {evse_uid}")
    return ok(evse_object(evse))


@router.get("/{location_id}/{evse_uid}/{connector_id}")
async def get_connector(location_id: str, evse_uid: str, connector_id: str, c: Caller = Depends(caller)):
    loc, _ = await _location(c, location_id)
    evse = _evse(loc, evse_uid)
    conn = next((x for x in evse.connectors if _same(x.connector_id, connector_id)), None) if evse else None
    if evse is None or conn is None:
        raise NotFound(f"Unknown connector {evse_uid}/{connector_id}")
    stored = next(
        (x for x in (evse.data or {}).get("connectors", []) if _same(str(x.get("id")), connector_id)), None
    )
    return ok(connector_object(conn, stored))
