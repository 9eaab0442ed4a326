"""The operators' core REST API under ``/api``: what the hub is set up with (parties, locations, tariffs).

A CPO's API key sees only that CPO (see :mod:`evhub.apiauth`). Packages add their own routers
(``/api/chargers`` by the gateway, ``/api/partners`` by OCPI, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from evhub.apiauth import principal
from evhub.components import Hub
from evhub.models import Location, Party, TariffVersion

router = APIRouter(tags=["core"])


def _hub(request: Request) -> Hub:
    return request.app.state.hub


async def _visible_rows(request: Request, query: Select[Any], owner: Any) -> Sequence[Any]:
    """Run ``query``, narrowed to the caller's CPO (``owner`` is the column naming the owning CPO) for a CPO key."""
    who = principal(request)
    if not who.is_hub:
        query = query.where(owner == who.cpo_id)
    async with _hub(request).db.session() as s:
        return (await s.scalars(query)).all()


@router.get("/parties", summary="Parties the hub knows (CPOs, eMSPs, the hub, site hosts)")
async def list_parties(request: Request) -> list[dict]:
    rows = await _visible_rows(request, select(Party).order_by(Party.id), Party.id)
    return [
        {
            "id": p.id,
            "country_code": p.country_code,
            "party_id": p.party_id,
            "role": p.role.value,
            "name": p.name,
        }
        for p in rows
    ]


@router.get("/locations", summary="Locations of the hosted CPOs with their EVSEs and live status")
async def list_locations(request: Request) -> list[dict]:
    query = select(Location).options(selectinload(Location.evses)).order_by(Location.id)
    rows = await _visible_rows(request, query, Location.cpo_id)
    return [
        {
            "id": loc.ocpi_id,
            "name": loc.name,
            "city": loc.city,
            "time_zone": loc.time_zone,
            "evses": [{"uid": e.uid, "evse_id": e.evse_id, "status": e.status} for e in loc.evses],
        }
        for loc in rows
    ]


@router.get("/tariffs", summary="Tariff versions (every published version, newest last)")
async def list_tariffs(request: Request) -> list[dict]:
    rows = await _visible_rows(
        request, select(TariffVersion).order_by(TariffVersion.id), TariffVersion.cpo_id
    )
    return [
        {
            "id": t.tariff_id,
            "version": t.version,
            "currency": t.currency,
            "start_date_time": t.start_date_time.isoformat() if t.start_date_time else None,
            "source": t.source,
        }
        for t in rows
    ]
