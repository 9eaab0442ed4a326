"""``/api/sessions``: charging sessions of the hosted CPOs, and one session with its meter values.

Sessions are named by their uid (the OCPI session id). The list is newest first and can be narrowed by
OCPI ``status``, ``pricing_state`` (``failed`` shows the sessions pricing could not price, with the reason)
and charger. A CPO key sees only its own CPO's sessions; another CPO's is 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.apiauth import api_key, principal
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.models import (
    EVSE,
    Cdr,
    ChargePoint,
    ChargingSession,
    Connector,
    Location,
    MeterValue,
    Party,
    PricingState,
    SessionStatus,
    Token,
)

router = APIRouter(
    prefix="/sessions",
    tags=["sessions"],
    dependencies=[Depends(api_key), Depends(refuse_nul)],
    responses=errors(401, 422),
)


class SessionOut(BaseModel):
    """A charging session as the hub keeps it (energy in Wh as exact decimals, times in UTC)."""

    id: str = Field(description="Session uid (the OCPI session id)")
    country_code: str = Field(description="The CPO's country code")
    party_id: str = Field(description="The CPO's party id")
    charger: str | None = Field(description="The charger's identity")
    transaction_id: str = Field(description="The charger's transaction id")
    location_id: str | None
    evse_uid: str | None
    connector_id: str | None
    token_uid: str | None
    id_tag: str | None
    auth_method: str
    status: SessionStatus
    start_time: datetime
    end_time: datetime | None
    meter_start_wh: Decimal | None
    meter_stop_wh: Decimal | None
    energy_wh: Decimal
    stop_reason: str | None
    currency: str | None
    pricing_state: PricingState
    pricing_error: str | None
    cdrs: list[str] = Field(description="Uids of the session's CDRs (with corrections and credits)")
    last_updated: datetime


class MeterValueOut(BaseModel):
    """One sampled value, at the charger's timestamp."""

    timestamp: datetime
    measurand: str
    phase: str
    location: str
    context: str
    unit: str
    value: Decimal
    signed: bool = Field(description="The charger signed this value (the signed data is kept byte-exact)")


class SessionDetailOut(SessionOut):
    meter_values: list[MeterValueOut] = Field(description="Every sampled value, in time order")


async def _names(db_session: AsyncSession, model: type, column: str, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await db_session.execute(select(model.id, getattr(model, column)).where(model.id.in_(wanted)))  # type: ignore[attr-defined]
    return {row[0]: row[1] for row in rows}


async def _describe(db_session: AsyncSession, rows: Sequence[ChargingSession]) -> list[SessionOut]:
    """Sessions with the names of what they refer to (looked up for the whole page at once)."""
    chargers = await _names(db_session, ChargePoint, "identity", {r.charge_point_id for r in rows})
    locations = await _names(db_session, Location, "ocpi_id", {r.location_id for r in rows})
    evses = await _names(db_session, EVSE, "uid", {r.evse_pk for r in rows})
    connectors = await _names(db_session, Connector, "connector_id", {r.connector_pk for r in rows})
    tokens = await _names(db_session, Token, "uid", {r.token_id for r in rows})
    cpos = {
        p.id: p for p in await db_session.scalars(select(Party).where(Party.id.in_({r.cpo_id for r in rows})))
    }
    cdrs: dict[int, list[str]] = {}
    if rows:
        query = select(Cdr.session_id, Cdr.cdr_uid).where(Cdr.session_id.in_([r.id for r in rows]))
        for session_id, uid in await db_session.execute(query.order_by(Cdr.id)):
            cdrs.setdefault(session_id, []).append(uid)
    return [
        SessionOut(
            id=r.session_uid,
            country_code=cpos[r.cpo_id].country_code,
            party_id=cpos[r.cpo_id].party_id,
            charger=chargers.get(r.charge_point_id) if r.charge_point_id else None,
            transaction_id=r.transaction_id,
            location_id=locations.get(r.location_id) if r.location_id else None,
            evse_uid=evses.get(r.evse_pk) if r.evse_pk else None,
            connector_id=connectors.get(r.connector_pk) if r.connector_pk else None,
            token_uid=tokens.get(r.token_id) if r.token_id else None,
            id_tag=r.id_tag,
            auth_method=r.auth_method,
            status=r.status,
            start_time=r.start_time,
            end_time=r.end_time,
            meter_start_wh=r.meter_start_wh,
            meter_stop_wh=r.meter_stop_wh,
            energy_wh=r.energy_wh,
            stop_reason=r.stop_reason,
            currency=r.currency,
            pricing_state=r.pricing_state,
            pricing_error=r.pricing_error,
            cdrs=cdrs.get(r.id, []),
            last_updated=r.last_updated,
        )
        for r in rows
    ]


@router.get("", summary="Charging sessions, newest first", responses=paged())
async def list_sessions(
    request: Request,
    page: Paging = Depends(paging),
    status: SessionStatus | None = Query(None, description="Only sessions in this OCPI status"),
    pricing_state: PricingState | None = Query(None, description="Only sessions in this pricing state"),
    charger: str | None = Query(None, description="Only sessions of this charger (identity)"),
) -> list[SessionOut]:
    who = principal(request)
    query = select(ChargingSession).order_by(ChargingSession.start_time.desc(), ChargingSession.id.desc())
    if not who.is_hub:
        query = query.where(ChargingSession.cpo_id == who.cpo_id)
    if status is not None:
        query = query.where(ChargingSession.status == status)
    if pricing_state is not None:
        query = query.where(ChargingSession.pricing_state == pricing_state)
    if charger is not None:
        query = query.join(ChargePoint, ChargePoint.id == ChargingSession.charge_point_id).where(
            ChargePoint.identity == charger
        )
    async with request.app.state.hub.db.session() as db_session:
        return await _describe(db_session, await page.rows(db_session, query))


@router.get("/{session_id}", summary="One session with its meter values", responses=errors(404))
async def get_session(session_id: str, request: Request) -> SessionDetailOut:
    async with request.app.state.hub.db.session() as db_session:
        row = await db_session.scalar(
            select(ChargingSession).where(ChargingSession.session_uid == session_id)
        )
        if row is None or not principal(request).sees(row.cpo_id):
            raise HTTPException(404, f"unknown session {session_id}")
        (summary,) = await _describe(db_session, [row])
        samples = (
            await db_session.scalars(
                select(MeterValue)
                .where(MeterValue.session_id == row.id)
                .order_by(MeterValue.timestamp, MeterValue.measurand, MeterValue.phase)
            )
        ).all()
    return SessionDetailOut(
        **summary.model_dump(),
        meter_values=[
            MeterValueOut(
                timestamp=m.timestamp,
                measurand=m.measurand,
                phase=m.phase,
                location=m.location,
                context=m.context,
                unit=m.unit,
                value=m.value,
                signed=m.signed_data is not None,
            )
            for m in samples
        ],
    )
