"""``/api/locations``: a CPO's locations with their EVSEs (live status) and connectors (with tariff ids).

A location is named as OCPI names it, by its CPO and its id: ``/api/locations/{country_code}/{party_id}/{id}``
(two CPOs may use the same location id). A CPO key sees only its own CPO's locations; another CPO's is 404.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from kernel.apiauth import api_key, principal
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.models import EVSE, Location, Party, PartyRole

router = APIRouter(
    prefix="/locations",
    tags=["locations"],
    dependencies=[Depends(api_key), Depends(refuse_nul)],
    responses=errors(401, 422),
)


class ConnectorOut(BaseModel):
    id: str
    standard: str
    format: str
    power_type: str
    max_voltage: int
    max_amperage: int
    max_electric_power: int | None
    tariff_ids: list[str]


class EvseOut(BaseModel):
    uid: str
    evse_id: str | None
    status: str = Field(description="Live OCPI status, kept by the gateway")
    connectors: list[ConnectorOut]


class LocationOut(BaseModel):
    """A location of a hosted CPO (the OCPI fields the hub keeps as columns)."""

    id: str
    country_code: str
    party_id: str
    name: str | None
    address: str
    city: str
    postal_code: str | None
    country: str
    latitude: str
    longitude: str
    time_zone: str
    grid_zone: str | None
    publish: bool
    last_updated: datetime
    evses: list[EvseOut]


def _describe(loc: Location, cpo: Party) -> LocationOut:
    return LocationOut(
        id=loc.ocpi_id,
        country_code=cpo.country_code,
        party_id=cpo.party_id,
        name=loc.name,
        address=loc.address,
        city=loc.city,
        postal_code=loc.postal_code,
        country=loc.country,
        latitude=loc.latitude,
        longitude=loc.longitude,
        time_zone=loc.time_zone,
        grid_zone=loc.grid_zone,
        publish=loc.publish,
        last_updated=loc.last_updated,
        evses=[
            EvseOut(
                uid=e.uid,
                evse_id=e.evse_id,
                status=e.status,
                connectors=[
                    ConnectorOut(
                        id=c.connector_id,
                        standard=c.standard,
                        format=c.format,
                        power_type=c.power_type,
                        max_voltage=c.max_voltage,
                        max_amperage=c.max_amperage,
                        max_electric_power=c.max_electric_power,
                        tariff_ids=[str(t) for t in c.tariff_ids or []],
                    )
                    for c in e.connectors
                ],
            )
            for e in loc.evses
        ],
    )


def _with_evses() -> LoaderOption:
    return selectinload(Location.evses).selectinload(EVSE.connectors)


@router.get("", summary="Locations of the hosted CPOs with their EVSEs and live status", responses=paged())
async def list_locations(request: Request, page: Paging = Depends(paging)) -> list[LocationOut]:
    who = principal(request)
    query = select(Location).options(_with_evses()).order_by(Location.id)
    if not who.is_hub:
        query = query.where(Location.cpo_id == who.cpo_id)
    async with request.app.state.hub.db.session() as db_session:
        rows = await page.rows(db_session, query)
        cpos = {
            p.id: p
            for p in await db_session.scalars(select(Party).where(Party.id.in_({r.cpo_id for r in rows})))
        }
    return [_describe(loc, cpos[loc.cpo_id]) for loc in rows]


@router.get("/{country_code}/{party_id}/{location_id}", summary="One location", responses=errors(404))
async def get_location(
    request: Request,
    country_code: str = Path(description="The CPO's ISO 3166 alpha-2 country code"),
    party_id: str = Path(description="The CPO's party id"),
    location_id: str = Path(description="The location's OCPI id"),
) -> LocationOut:
    async with request.app.state.hub.db.session() as db_session:
        row = (
            await db_session.execute(
                select(Location, Party)
                .join(Party, Party.id == Location.cpo_id)
                .where(
                    Party.country_code == country_code.upper(),
                    Party.party_id == party_id.upper(),
                    Party.role == PartyRole.CPO,
                    Location.ocpi_id == location_id,
                )
                .options(_with_evses())
            )
        ).first()
    if row is None or not principal(request).sees(row[0].cpo_id):
        raise HTTPException(404, f"unknown location {country_code}*{party_id} {location_id}")
    return _describe(row[0], row[1])
