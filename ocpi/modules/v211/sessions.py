"""Sessions 2.1.1, Sender interface: the list (paginated; 2.1.1 has no single-Session GET at the CPO) of the
sessions of the partner's own tokens at every CPO it may see, the same rows as the 2.2.1 Sender
(:func:`ocpi.modules.sessions.visible_sessions`). A 2.1.1 Session embeds its Location (with only the
session's EVSE and connector): the 2.2.1 Location of the session goes to :func:`ocpi.v211.objects.session_to_211`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kernel.models import ChargingSession, Party
from ocpi.deps import Caller211, caller_211
from ocpi.envelope import ok
from ocpi.modules.sessions import visible_sessions
from ocpi.pagination import paginate
from ocpi.render_objects import load_location, location_object, session_object
from ocpi.v211 import objects

router = APIRouter()


async def session_211(c: Caller211, cs: ChargingSession, cpo: Party) -> dict[str, Any]:
    loc = await load_location(c.db_session, cs.location_id) if cs.location_id else None
    location = location_object(loc, cpo) if loc is not None else None
    return objects.session_to_211(await session_object(c.db_session, cs, cpo), location)


@router.get("")
@router.get("/")
async def list_sessions(request: Request, c: Caller211 = Depends(caller_211)):
    rows, headers = await paginate(
        c.db_session,
        request,
        visible_sessions(c.cpo_ids, c.role.party_pk),
        ChargingSession.last_updated,
        ChargingSession.id,
        c.platform.max_limit,
    )
    return ok([await session_211(c, cs, c.cpo(cs.cpo_id)) for cs in rows], headers=headers)
