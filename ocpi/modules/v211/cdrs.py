"""CDRs 2.1.1, Sender interface: the list (paginated; 2.1.1 has no single-CDR GET at the CPO) of the CDRs of
the partner's own tokens at every CPO it may see, the same rows as the 2.2.1 Sender
(:func:`ocpi.modules.cdrs.visible_cdrs`), translated by :func:`ocpi.v211.objects.cdr_to_211` (the same money:
2.1.1 ``total_cost`` is the 2.2.1 ``total_cost.excl_vat``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from kernel.models import Cdr
from ocpi.deps import Caller211, caller_211
from ocpi.envelope import ok
from ocpi.modules.cdrs import visible_cdrs
from ocpi.pagination import paginate
from ocpi.render_objects import cdr_object
from ocpi.v211 import objects

router = APIRouter()


@router.get("")
@router.get("/")
async def list_cdrs(request: Request, c: Caller211 = Depends(caller_211)):
    rows, headers = await paginate(
        c.db_session,
        request,
        visible_cdrs(c.cpo_ids, c.role.party_pk),
        Cdr.last_updated,
        Cdr.id,
        c.platform.max_limit,
    )
    return ok([objects.cdr_to_211(cdr_object(cdr)) for cdr in rows], headers=headers)
