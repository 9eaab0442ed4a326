"""The dashboard: the month's energy, cost and sessions, the daily chart's data and the top drivers and vehicles."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kernel.energy import format_kwh
from kernel.timeutil import to_local, utcnow
from portal import reports
from portal.page_kit import PageKit


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    state = kit.state

    @router.get("/", response_class=HTMLResponse)
    async def dashboard(request: Request, month: str | None = None) -> Response:
        manager = await kit.require_manager(request)
        today = to_local(utcnow(), state.time_zone).date()
        first, last = reports.month_bounds(month, today)
        async with state.db.session() as db_session:
            figures = await reports.dashboard(
                db_session, manager.fleet_id, manager.currency, state.time_zone, first, last
            )
        chart = {
            "labels": [day.isoformat() for day, _, _ in figures.days],
            "kwh": [format_kwh(kwh) for _, kwh, _ in figures.days],
            "cost": [str(cost) for _, _, cost in figures.days],
            "currency": manager.currency,
        }
        return kit.page(
            request,
            manager,
            "dashboard.html",
            {"d": figures, "chart": chart, "month": first.strftime("%Y-%m")},
        )

    return router
