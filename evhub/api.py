"""The operators' core REST API under ``/api``: what the hub is set up with (parties, tariffs) and the read
endpoints of a CPO's back office (locations, sessions, CDRs, tokens; one router per resource, included here).

A CPO's API key sees only that CPO (see :mod:`kernel.apiauth`). Every list is paged (:mod:`kernel.apipaging`),
every error is ``{"detail": ...}`` (:mod:`kernel.apierrors`). Packages add their own routers
(``/api/chargers`` by the gateway, ``/api/partners`` by OCPI, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import Select, select

from evhub.api_cdrs import router as cdrs_router
from evhub.api_locations import router as locations_router
from evhub.api_sessions import router as sessions_router
from evhub.api_tokens import router as tokens_router
from kernel.apiauth import api_key, principal
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.components import Hub
from kernel.models import Party, PartyRole, TariffVersion

router = APIRouter(
    tags=["core"], dependencies=[Depends(api_key), Depends(refuse_nul)], responses=errors(401, 422)
)


class PartyOut(BaseModel):
    """A party the hub knows."""

    id: int
    country_code: str
    party_id: str
    role: PartyRole
    name: str


class TariffVersionOut(BaseModel):
    """One published version of a CPO's tariff."""

    id: str
    version: int
    currency: str
    start_date_time: datetime | None
    source: str


def _hub(request: Request) -> Hub:
    return request.app.state.hub


async def _visible_rows(request: Request, page: Paging, query: Select[Any], owner: Any) -> Sequence[Any]:
    """One page of ``query``, narrowed to the caller's CPO (``owner`` names the owning CPO) for a CPO key."""
    who = principal(request)
    if not who.is_hub:
        query = query.where(owner == who.cpo_id)
    async with _hub(request).db.session() as db_session:
        return await page.rows(db_session, query)


@router.get(
    "/parties",
    summary="Parties the hub knows (CPOs, eMSPs, the hub, site hosts); a CPO key sees itself",
    responses=paged(),
)
async def list_parties(request: Request, page: Paging = Depends(paging)) -> list[PartyOut]:
    rows = await _visible_rows(request, page, select(Party).order_by(Party.id), Party.id)
    return [
        PartyOut(id=p.id, country_code=p.country_code, party_id=p.party_id, role=p.role, name=p.name)
        for p in rows
    ]


@router.get("/tariffs", summary="Tariff versions (every published version, oldest first)", responses=paged())
async def list_tariffs(request: Request, page: Paging = Depends(paging)) -> list[TariffVersionOut]:
    query = select(TariffVersion).order_by(TariffVersion.id)
    rows = await _visible_rows(request, page, query, TariffVersion.cpo_id)
    return [
        TariffVersionOut(
            id=t.tariff_id,
            version=t.version,
            currency=t.currency,
            start_date_time=t.start_date_time,
            source=t.source,
        )
        for t in rows
    ]


router.include_router(locations_router)
router.include_router(sessions_router)
router.include_router(cdrs_router)
router.include_router(tokens_router)
