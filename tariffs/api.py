"""HTTP edge of pricing: quotes (``POST /api/tariffs/quote``) and grid load (``POST /api/grid/{zone}/load``).

Quotes run through :func:`tariffs.core.quote.quote`, the same engine path as every CDR. Amounts are exact
decimals written as strings; errors are ``{"detail": ...}`` (:mod:`kernel.apierrors`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from kernel.apiauth import Principal, api_key, principal, require_hub
from kernel.apierrors import errors, refuse_nul
from kernel.components import Hub
from kernel.models import EVSE, Connector, Location
from kernel.timeutil import utcnow, zone
from kernel.validation import describe_validation_error
from tariffs.core.engine import PricingError
from tariffs.core.quote import quote
from tariffs.core.render import cdr_fields, explanation
from tariffs.core.tariff_document import Tariff
from tariffs.core.tariff_json import to_jsonable
from tariffs.dynamic import GridConfigError, record_load
from tariffs.price_lock import apply_price_lock
from tariffs.tariff_versions import versions_for_connector

router = APIRouter(
    tags=["pricing"], dependencies=[Depends(api_key), Depends(refuse_nul)], responses=errors(401, 422)
)


class QuoteRequest(BaseModel):
    """A planned session: priced with a given OCPI tariff, or with the tariff of a location's EVSE."""

    tariff: dict[str, Any] | None = Field(default=None, description="An OCPI 2.2.1 Tariff object")
    location_id: str | None = Field(default=None, description="OCPI location id (its connector's tariff)")
    evse_uid: str | None = None
    planned_kwh: Decimal = Field(ge=0)
    duration_minutes: int = Field(gt=0, le=7 * 24 * 60)
    parking_minutes: int = Field(default=0, ge=0, le=7 * 24 * 60)
    start: datetime | None = Field(default=None, description="Default: now")
    power_kw: Decimal | None = Field(default=None, gt=0)
    time_zone: str | None = Field(
        default=None, description="IANA zone when no location is given (default UTC)"
    )


class LoadSample(BaseModel):
    load_percent: Decimal = Field(ge=0, le=100, description="Grid load in percent, 0 to 100")
    timestamp: datetime | None = Field(default=None, description="Default: now")


class QuoteOut(BaseModel):
    """The quote's OCPI cost fields and the engine's explanation (lines that add up to the totals)."""

    quote: dict[str, Any] = Field(description="OCPI CDR cost fields (total_cost, total_energy, ...)")
    explanation: dict[str, Any] = Field(description="How the price came about, line by line")


class PublishedVersion(BaseModel):
    tariff_id: str
    version: int
    start_date_time: datetime


class GridLoadOut(BaseModel):
    """The zone and the tariff versions the sample published (none when the price band did not change)."""

    zone: str
    published: list[PublishedVersion]


def _hub(request: Request) -> Hub:
    return request.app.state.hub


async def _location_tariffs(
    hub: Hub, req: QuoteRequest, start: datetime, who: Principal
) -> tuple[list[Tariff], str]:
    """The tariffs rating would use at the location. A CPO's key reaches only its own locations (published or
    not): another CPO's answers 404 exactly like a missing one, so the answer does not reveal it exists."""
    located = select(Location).where(Location.ocpi_id == req.location_id)
    if not who.is_hub:
        located = located.where(Location.cpo_id == who.cpo_id)
    async with hub.db.session() as db_session:
        loc = await db_session.scalar(located.order_by(Location.id).limit(1))
        if loc is None or not who.sees(loc.cpo_id):
            raise HTTPException(404, f"unknown location {req.location_id!r}")
        query = select(Connector).join(EVSE, Connector.evse_pk == EVSE.id).where(EVSE.location_id == loc.id)
        if req.evse_uid:
            query = query.where(EVSE.uid == req.evse_uid)
        connectors = (await db_session.scalars(query.order_by(EVSE.id, Connector.id))).all()
        # The first connector that rating could price, with the versions rating would use (else DEFAULT).
        for tariff_ids in [*(c.tariff_ids or [] for c in connectors if c.tariff_ids), []]:
            stored = await versions_for_connector(db_session, loc.cpo_id, tariff_ids)
            if stored:  # the price lock as rating applies it (T8)
                try:
                    stored = await apply_price_lock(db_session, loc.cpo_id, stored, start)
                except ValueError as exc:
                    raise HTTPException(422, str(exc)) from None
                return [v.tariff for v in stored], loc.time_zone
    raise HTTPException(404, f"no tariff published for location {req.location_id!r}")


@router.post(
    "/tariffs/quote",
    summary="What a planned session would cost (same engine as the CDR)",
    responses=errors(404),
)
async def quote_endpoint(req: QuoteRequest, request: Request) -> QuoteOut:
    start = req.start or utcnow()
    if req.tariff is not None:
        try:
            tariffs = [Tariff.model_validate(req.tariff)]
        except ValidationError as exc:
            raise HTTPException(422, f"invalid tariff: {describe_validation_error(exc)}") from None
        time_zone = req.time_zone or "UTC"
    elif req.location_id:
        tariffs, time_zone = await _location_tariffs(_hub(request), req, start, principal(request))
    else:
        raise HTTPException(422, "give either tariff or location_id")
    try:
        zone(time_zone)
        result = quote(
            tariffs,
            start,
            req.planned_kwh,
            req.duration_minutes * 60,
            time_zone,
            power_kw=req.power_kw,
            parking_duration=req.parking_minutes * 60,
        )
    except (PricingError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    return QuoteOut(
        quote=to_jsonable(cdr_fields(result, with_periods=False), decimals_as="string"),
        explanation=to_jsonable(explanation(result), decimals_as="string"),
    )


@router.post(
    "/grid/{zone_name}/load",
    summary="A grid load sample for a zone; may publish new tariff versions (hub operator keys)",
    dependencies=[Depends(require_hub)],
    responses=errors(403),
)
async def grid_load(zone_name: str, sample: LoadSample, request: Request) -> GridLoadOut:
    hub = _hub(request)
    try:
        published = await record_load(
            hub.db,
            zone_name,
            sample.timestamp or utcnow(),
            sample.load_percent,
            hub.hooks.tariff,
        )
    except GridConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return GridLoadOut(
        zone=zone_name,
        published=[
            PublishedVersion(tariff_id=v.tariff_id, version=v.version, start_date_time=v.start_date_time)
            for v in published
        ],
    )
