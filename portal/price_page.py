"""The live price page: the published locations to choose from and the chosen location's quote."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from kernel.models import Location
from kernel.validation import ascii_int
from portal import price
from portal.page_kit import PageKit


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    state = kit.state

    @router.get("/price", response_class=HTMLResponse)
    async def price_page(request: Request, location: str | None = None) -> Response:
        manager = await kit.require_manager(request)
        location_id = ascii_int(location)
        async with state.db.session() as db_session:
            locations = (
                await db_session.execute(
                    select(Location.id, Location.name, Location.address, Location.city)
                    .where(Location.publish.is_(True))
                    .order_by(Location.name, Location.id)
                )
            ).all()
            quote = None
            if location_id is not None:
                quote = await price.live_price(db_session, location_id, manager.currency)
        return kit.page(
            request,
            manager,
            "price.html",
            {"locations": locations, "quote": quote, "selected": location_id},
        )

    return router
