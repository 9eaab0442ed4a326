"""The fleet's drivers (the name and the email that receives receipts) and vehicles: the list and adding one."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Token
from kernel.models.portal import FleetDriver, FleetVehicle
from portal.forms import clean
from portal.page_kit import PageKit, back


async def drivers_and_vehicles(
    db_session: AsyncSession, fleet_id: int
) -> tuple[Sequence[FleetDriver], Sequence[FleetVehicle]]:
    """The fleet's drivers (by name) and vehicles (by label)."""
    drivers = (
        await db_session.scalars(
            select(FleetDriver).where(FleetDriver.fleet_id == fleet_id).order_by(FleetDriver.name)
        )
    ).all()
    vehicles = (
        await db_session.scalars(
            select(FleetVehicle).where(FleetVehicle.fleet_id == fleet_id).order_by(FleetVehicle.label)
        )
    ).all()
    return drivers, vehicles


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    state = kit.state

    @router.get("/drivers", response_class=HTMLResponse)
    async def drivers_page(request: Request, msg: str | None = None) -> Response:
        manager = await kit.require_manager(request)
        async with state.db.session() as db_session:
            drivers, vehicles = await drivers_and_vehicles(db_session, manager.fleet_id)
            tokens = (
                (await db_session.execute(select(Token).where(Token.fleet_id == manager.fleet_id)))
                .scalars()
                .all()
            )
        by_driver: dict[str, list[str]] = {}
        by_vehicle: dict[str, list[str]] = {}
        for token in tokens:
            if token.driver_name:
                by_driver.setdefault(token.driver_name, []).append(token.uid)
            if token.vehicle:
                by_vehicle.setdefault(token.vehicle, []).append(token.uid)
        return kit.page(
            request,
            manager,
            "drivers.html",
            {
                "drivers": drivers,
                "vehicles": vehicles,
                "by_driver": by_driver,
                "by_vehicle": by_vehicle,
                "msg": msg,
            },
        )

    @router.post("/drivers")
    async def add_driver(request: Request) -> Response:
        manager = await kit.require_manager(request)
        form = await kit.posted_form(request, manager)
        name = clean(form.get("name"), 200)
        email = clean(form.get("email"), 254)
        if not name:
            return back("/drivers", "A driver needs a name.")
        if email and ("@" not in email or any(c in email for c in "\r\n <>")):
            return back("/drivers", f"Not an email address: {email}")
        try:
            async with state.db.session() as db_session:
                db_session.add(
                    FleetDriver(fleet_id=manager.fleet_id, name=name, email=email.lower() if email else None)
                )
        except IntegrityError:
            return back("/drivers", f"Driver {name} already exists.")
        return back("/drivers", f"Driver {name} added.")

    @router.post("/vehicles")
    async def add_vehicle(request: Request) -> Response:
        manager = await kit.require_manager(request)
        form = await kit.posted_form(request, manager)
        label = clean(form.get("label"), 100)
        if not label:
            return back("/drivers", "A vehicle needs a name.")
        try:
            async with state.db.session() as db_session:
                db_session.add(
                    FleetVehicle(fleet_id=manager.fleet_id, label=label, plate=clean(form.get("plate"), 20))
                )
        except IntegrityError:
            return back("/drivers", f"Vehicle {label} already exists.")
        return back("/drivers", f"Vehicle {label} added.")

    return router
