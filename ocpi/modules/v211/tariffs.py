"""Tariffs 2.1.1, Sender interface: the list (paginated; 2.1.1 has no single-Tariff GET at the CPO) of the
current version of each tariff of every CPO the partner may see, the same rows as the 2.2.1 Sender
(:func:`ocpi.modules.tariffs.current_tariffs`), translated by :func:`ocpi.v211.objects.tariff_to_211`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from kernel.models import TariffVersion
from ocpi.deps import Caller211, caller_211
from ocpi.envelope import ok
from ocpi.modules.tariffs import current_tariffs
from ocpi.pagination import paginate
from ocpi.render_objects import tariff_object
from ocpi.v211 import objects
from tariffs import published_start

router = APIRouter()


@router.get("")
@router.get("/")
async def list_tariffs(request: Request, c: Caller211 = Depends(caller_211)):
    rows, headers = await paginate(
        c.db_session,
        request,
        current_tariffs(c.cpo_ids),
        TariffVersion.last_updated,
        TariffVersion.id,
        c.platform.max_limit,
    )
    return ok(
        [
            objects.tariff_to_211(
                tariff_object(tv, c.cpo(tv.cpo_id), await published_start(c.db_session, tv))
            )
            for tv in rows
        ],
        headers=headers,
    )
