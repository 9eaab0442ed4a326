"""The fleet's charging sessions: the filtered, paginated list, its CSV export, and one session's page with its
price breakdown. A session of another fleet is a 404."""

from __future__ import annotations

import math
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from kernel.validation import ascii_int
from portal import sessions_view
from portal.page_kit import PageKit
from portal.sessions_view import PAGE_SIZE, SessionFilter, fmt_money


def _page_number(query: dict[str, str]) -> int:
    """The ``page`` query parameter (1 when missing or not a positive number)."""
    raw = query.get("page", "")
    return ascii_int(raw, minimum=1, maximum=1_000_000) or 1


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    state = kit.state

    @router.get("/sessions", response_class=HTMLResponse)
    async def sessions_page(request: Request) -> Response:
        manager = await kit.require_manager(request)
        query_params = dict(request.query_params)
        flt = SessionFilter.from_query(query_params)
        page_no = _page_number(query_params)
        async with state.db.session() as db_session:
            total = await sessions_view.count_sessions(db_session, manager.fleet_id, flt, state.time_zone)
            rows = await sessions_view.fetch_sessions(
                db_session,
                manager.fleet_id,
                flt,
                state.time_zone,
                limit=PAGE_SIZE,
                offset=(page_no - 1) * PAGE_SIZE,
            )
            choices = await sessions_view.fleet_filter_choices(db_session, manager.fleet_id)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        query = flt.as_query()
        return kit.page(
            request,
            manager,
            "sessions.html",
            {
                "rows": rows,
                "flt": flt,
                "total": total,
                "page_no": page_no,
                "pages": pages,
                "choices": choices,
                "fmt_money": fmt_money,
                "query": urlencode(query),
                "prev_q": urlencode({**query, "page": page_no - 1}),
                "next_q": urlencode({**query, "page": page_no + 1}),
            },
        )

    @router.get("/sessions.csv")
    async def sessions_csv(request: Request) -> Response:
        manager = await kit.require_manager(request)
        flt = SessionFilter.from_query(dict(request.query_params))
        async with state.db.session() as db_session:
            rows = await sessions_view.fetch_sessions(db_session, manager.fleet_id, flt, state.time_zone)
        return Response(
            sessions_view.to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="sessions.csv"',
                "Cache-Control": "no-store",
            },
        )

    @router.get("/sessions/{session_id}", response_class=HTMLResponse)
    async def session_page(request: Request, session_id: int) -> Response:
        manager = await kit.require_manager(request)
        async with state.db.session() as db_session:
            found = await sessions_view.session_detail(
                db_session, manager.fleet_id, session_id, state.time_zone
            )
        if found is None:
            raise HTTPException(404, "no such session")
        row, cdrs, charging_session = found
        breakdowns = []
        for cdr in cdrs:
            columns, lines = sessions_view.explanation_lines(cdr.explanation)
            breakdowns.append({"cdr": cdr, "columns": columns, "lines": lines})
        return kit.page(
            request,
            manager,
            "session.html",
            {"r": row, "sess": charging_session, "breakdowns": breakdowns, "fmt_money": fmt_money},
        )

    return router
