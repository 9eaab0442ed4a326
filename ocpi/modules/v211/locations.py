"""Locations 2.1.1, Sender interface: the list (paginated) and one Location / EVSE / Connector, the same rows
as the 2.2.1 Sender (:func:`ocpi.modules.locations.visible_locations`: ``publish`` / ``publish_allowed_to`` for
the partner's role) at every CPO the partner may see, translated by :mod:`ocpi.v211.objects`.

Ids are compared in upper case as in 2.2.1; a location id two of those CPOs both use is the one of the CPO
with the lowest id (2.1.1 has no routing headers to tell them apart)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func

from kernel.models import Location
from ocpi import status
from ocpi.deps import Caller211, caller_211
from ocpi.envelope import NotFound, ok
from ocpi.modules.locations import visible_locations, visible_object
from ocpi.pagination import paginate
from ocpi.v211 import objects

router = APIRouter()


def _same(stored: Any, given: str) -> bool:
    return str(stored).upper() == given.upper()


async def _location(c: Caller211, location_id: str) -> dict[str, Any]:
    """The 2.2.1 Location ``location_id`` as the caller sees it; 2003 when it may not see one."""
    query, hidden = await visible_locations(c.db_session, c.cpo_ids, c.role.party_pk)
    loc = await c.db_session.scalar(
        query.where(func.upper(Location.ocpi_id) == location_id.upper()).order_by(Location.cpo_id).limit(1)
    )
    if loc is None:
        raise NotFound(f"Unknown location {location_id}", code=status.UNKNOWN_LOCATION)
    return visible_object(loc, c.cpo(loc.cpo_id), hidden)


def _evse(location: dict[str, Any], evse_uid: str) -> dict[str, Any]:
    evse = next((e for e in location.get("evses", []) if _same(e.get("uid"), evse_uid)), None)
    if evse is None:
        raise NotFound(f"Unknown EVSE {evse_uid}")
    return evse


@router.get("")
@router.get("/")
async def list_locations(request: Request, c: Caller211 = Depends(caller_211)):
    query, hidden = await visible_locations(c.db_session, c.cpo_ids, c.role.party_pk)
    rows, headers = await paginate(
        c.db_session, request, query, Location.last_updated, Location.id, c.platform.max_limit
    )
    return ok(
        [objects.location_to_211(visible_object(loc, c.cpo(loc.cpo_id), hidden)) for loc in rows],
        headers=headers,
    )


@router.get("/{location_id}")
async def get_location(location_id: str, c: Caller211 = Depends(caller_211)):
    return ok(objects.location_to_211(await _location(c, location_id)))


@router.get("/{location_id}/{evse_uid}")
async def get_evse(location_id: str, evse_uid: str, c: Caller211 = Depends(caller_211)):
    return ok(objects.evse_to_211(_evse(await _location(c, location_id), evse_uid)))


@router.get("/{location_id}/{evse_uid}/{connector_id}")
async def get_connector(
    location_id: str, evse_uid: str, connector_id: str, c: Caller211 = Depends(caller_211)
):
    evse = _evse(await _location(c, location_id), evse_uid)
    conn = next((x for x in evse.get("connectors", []) if _same(x.get("id"), connector_id)), None)
    if conn is None:
        raise NotFound(f"Unknown connector {evse_uid}/{connector_id}")
    return ok(objects.connector_to_211(conn))
