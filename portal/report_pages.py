"""The monthly cost report of the fleet, as a printable page and as CSV."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kernel.timeutil import to_local, utcnow
from portal import reports
from portal.login import Principal
from portal.page_kit import PageKit
from portal.sessions_view import fmt_money


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    state = kit.state

    async def monthly_report(manager: Principal, month: str | None) -> reports.MonthlyReport:
        today = to_local(utcnow(), state.time_zone).date()
        first, last = reports.month_bounds(month, today)
        async with state.db.session() as db_session:
            return await reports.monthly_report(
                db_session,
                manager.fleet_id,
                manager.fleet_name,
                manager.currency,
                state.time_zone,
                first,
                last,
            )

    @router.get("/reports", response_class=HTMLResponse)
    async def report_page(request: Request, month: str | None = None) -> Response:
        manager = await kit.require_manager(request)
        report = await monthly_report(manager, month)
        return kit.page(
            request,
            manager,
            "report.html",
            {
                "rep": report,
                "month": report.first.strftime("%Y-%m"),
                "fmt_money": fmt_money,
                "today": to_local(utcnow(), state.time_zone).date(),
            },
        )

    @router.get("/reports.csv")
    async def report_csv(request: Request, month: str | None = None) -> Response:
        manager = await kit.require_manager(request)
        report = await monthly_report(manager, month)
        name = f"evhub-{report.first.strftime('%Y-%m')}.csv"
        return Response(
            reports.monthly_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    return router
