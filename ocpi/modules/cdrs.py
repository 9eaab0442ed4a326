"""CDRs, Sender interface: the CDRs of the caller's own tokens at the addressed CPO.

A CDR id is a CiString(39) (OCPI 2.2.1): compared in upper case."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Select, func, select

from kernel.models import Cdr
from ocpi.deps import Caller, caller
from ocpi.envelope import NotFound, ok
from ocpi.pagination import paginate
from ocpi.render_objects import cdr_object

router = APIRouter()


def visible_cdrs(cpo_ids: list[int], emsp_pk: int) -> Select[Cdr]:
    """The CDRs at ``cpo_ids`` of eMSP ``emsp_pk``'s tokens (shared with the 2.1.1 routes)."""
    return select(Cdr).where(Cdr.cpo_id.in_(cpo_ids), Cdr.emsp_id == emsp_pk)


def _visible(c: Caller):
    return visible_cdrs([c.cpo.id], c.role.party_pk)


@router.get("")
@router.get("/")
async def list_cdrs(request: Request, c: Caller = Depends(caller)):
    rows, headers = await paginate(
        c.db_session, request, _visible(c), Cdr.last_updated, Cdr.id, c.platform.max_limit
    )
    return ok([cdr_object(cdr) for cdr in rows], headers=headers)


@router.get("/{cdr_id}")
async def get_cdr(cdr_id: str, c: Caller = Depends(caller)):
    cdr = await c.db_session.scalar(_visible(c).where(func.upper(Cdr.cdr_uid) == cdr_id.upper()))
    if cdr is None:
        raise NotFound(f"Unknown CDR {cdr_id}")
    return ok(cdr_object(cdr))
