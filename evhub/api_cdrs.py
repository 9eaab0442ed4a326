"""``/api/cdrs``: the priced, immutable CDRs of the hosted CPOs, and one CDR with its price explanation.

The explanation is the pricing engine's own (:func:`tariffs.core.render.explanation`), stored with the CDR when it
was priced: the same document ``evhub cdrs show`` prints, never derived again here. Amounts are exact
decimals written as strings. A CPO key sees only its own CPO's CDRs; another CPO's is 404.

Each CDR shows whom it is billed to as recorded on it when it was made (``fleet``, ``driver_name``,
``vehicle``, ``holder_recorded``; :mod:`kernel.domain.cdr_holder`): the values billing uses, not the token's
today. They are the fleet's business (as ``/api/tokens`` keeps drivers' names to itself), so only the hub's
key sees them; a CPO's key gets them empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.apiauth import api_key, principal
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.models import Cdr, ChargingSession, Fleet, Party

router = APIRouter(
    prefix="/cdrs",
    tags=["cdrs"],
    dependencies=[Depends(api_key), Depends(refuse_nul)],
    responses=errors(401, 422),
)


class CdrOut(BaseModel):
    """A CDR's totals. A correction is a credit CDR (negated, ``credit_of`` the original) plus a new CDR
    with a higher ``revision``."""

    id: str = Field(description="CDR uid (the OCPI CDR id)")
    country_code: str
    party_id: str
    session_id: str = Field(description="Uid of the session it prices")
    revision: int
    is_credit: bool
    credit_of: str | None = Field(description="The CDR this one credits")
    currency: str
    start_date_time: datetime
    end_date_time: datetime
    total_energy_kwh: Decimal
    total_time_hours: Decimal
    total_cost_excl_vat: Decimal
    total_cost_incl_vat: Decimal | None
    tariff_versions: list[Any] = Field(description="The tariff versions that priced it")
    fleet: str | None = Field(
        None, description="The fleet (name) it is billed to, recorded when it was made; hub key only"
    )
    driver_name: str | None = Field(None, description="The token's driver when it was made; hub key only")
    vehicle: str | None = Field(None, description="The token's vehicle when it was made; hub key only")
    holder_recorded: bool = Field(
        description="Whether fleet, driver and vehicle were recorded on it (false: a CDR stored before they "
        "were, billed by its token's current holder)"
    )
    created_at: datetime
    last_updated: datetime


class CdrDetailOut(CdrOut):
    cdr: dict[str, Any] = Field(description="The OCPI 2.2.1 CDR object, as sent to partners")
    explanation: dict[str, Any] = Field(
        description="How the price came about: the engine's explained lines, which add up to the totals"
    )


async def _describe(db_session: AsyncSession, rows: Sequence[Cdr], *, holders: bool) -> list[CdrOut]:
    """The rows as served; ``holders`` (the hub's key): with the recorded fleet, driver and vehicle."""
    session_ids = {r.session_id for r in rows}
    sessions: dict[int, str] = {}
    if session_ids:
        query = select(ChargingSession.id, ChargingSession.session_uid).where(
            ChargingSession.id.in_(session_ids)
        )
        sessions = {row[0]: row[1] for row in await db_session.execute(query)}
    credited = {r.credit_of for r in rows if r.credit_of is not None}
    uids: dict[int, str] = {}
    if credited:
        uids = {
            row[0]: row[1]
            for row in await db_session.execute(select(Cdr.id, Cdr.cdr_uid).where(Cdr.id.in_(credited)))
        }
    fleet_ids = {r.fleet_id for r in rows if r.fleet_id is not None} if holders else set()
    fleets: dict[int, str] = {}
    if fleet_ids:
        query = select(Fleet.id, Fleet.name).where(Fleet.id.in_(fleet_ids))
        fleets = {row[0]: row[1] for row in await db_session.execute(query)}
    cpos = {
        p.id: p for p in await db_session.scalars(select(Party).where(Party.id.in_({r.cpo_id for r in rows})))
    }
    return [
        CdrOut(
            id=r.cdr_uid,
            country_code=cpos[r.cpo_id].country_code,
            party_id=cpos[r.cpo_id].party_id,
            session_id=sessions[r.session_id],
            revision=r.revision,
            is_credit=r.is_credit,
            credit_of=uids.get(r.credit_of) if r.credit_of is not None else None,
            currency=r.currency,
            start_date_time=r.start_date_time,
            end_date_time=r.end_date_time,
            total_energy_kwh=r.total_energy_kwh,
            total_time_hours=r.total_time_hours,
            total_cost_excl_vat=r.total_cost_excl_vat,
            total_cost_incl_vat=r.total_cost_incl_vat,
            tariff_versions=list(r.tariff_versions or []),
            fleet=fleets.get(r.fleet_id) if r.fleet_id is not None else None,
            driver_name=r.driver_name if holders else None,
            vehicle=r.vehicle if holders else None,
            holder_recorded=r.holder_recorded,
            created_at=r.created_at,
            last_updated=r.last_updated,
        )
        for r in rows
    ]


@router.get("", summary="CDRs, newest first", responses=paged())
async def list_cdrs(
    request: Request,
    page: Paging = Depends(paging),
    session_id: str | None = Query(None, description="Only the CDRs of this session (uid)"),
) -> list[CdrOut]:
    who = principal(request)
    query = select(Cdr).order_by(Cdr.id.desc())
    if not who.is_hub:
        query = query.where(Cdr.cpo_id == who.cpo_id)
    if session_id is not None:
        query = query.join(ChargingSession, ChargingSession.id == Cdr.session_id).where(
            ChargingSession.session_uid == session_id
        )
    async with request.app.state.hub.db.session() as db_session:
        return await _describe(db_session, await page.rows(db_session, query), holders=who.is_hub)


@router.get(
    "/{cdr_id}", summary="One CDR with the OCPI object and its price explanation", responses=errors(404)
)
async def get_cdr(cdr_id: str, request: Request) -> CdrDetailOut:
    async with request.app.state.hub.db.session() as db_session:
        row = await db_session.scalar(select(Cdr).where(Cdr.cdr_uid == cdr_id))
        if row is None or not principal(request).sees(row.cpo_id):
            raise HTTPException(404, f"unknown CDR {cdr_id}")
        (summary,) = await _describe(db_session, [row], holders=principal(request).is_hub)
    return CdrDetailOut(
        **summary.model_dump(), cdr=dict(row.data or {}), explanation=dict(row.explanation or {})
    )
