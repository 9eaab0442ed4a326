"""Sessions, Sender interface: the sessions of the caller's own tokens at the addressed CPO.

A session id is a CiString(36) (OCPI 2.2.1): compared in upper case."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Select, func, select

from kernel.models import ChargingSession, Token
from ocpi.deps import Caller, caller
from ocpi.envelope import NotFound, ok
from ocpi.pagination import paginate
from ocpi.render_objects import session_object

router = APIRouter()


def visible_sessions(cpo_ids: list[int], emsp_pk: int) -> Select[ChargingSession]:
    """The sessions at ``cpo_ids`` of eMSP ``emsp_pk``'s tokens (shared with the 2.1.1 routes)."""
    return (
        select(ChargingSession)
        .join(Token, Token.id == ChargingSession.token_id)
        .where(ChargingSession.cpo_id.in_(cpo_ids), Token.emsp_id == emsp_pk)
    )


def _visible(c: Caller):
    return visible_sessions([c.cpo.id], c.role.party_pk)


@router.get("")
@router.get("/")
async def list_sessions(request: Request, c: Caller = Depends(caller)):
    rows, headers = await paginate(
        c.db_session,
        request,
        _visible(c),
        ChargingSession.last_updated,
        ChargingSession.id,
        c.platform.max_limit,
    )
    return ok([await session_object(c.db_session, cs, c.cpo) for cs in rows], headers=headers)


@router.get("/{session_id}")
async def get_session(session_id: str, c: Caller = Depends(caller)):
    cs = await c.db_session.scalar(
        _visible(c).where(func.upper(ChargingSession.session_uid) == session_id.upper())
    )
    if cs is None:
        raise NotFound(f"Unknown session {session_id}")
    return ok(await session_object(c.db_session, cs, c.cpo))
