"""The portal's pages (server-rendered, mounted at ``/portal``). Every page and export is scoped to the
logged-in manager's fleet; every POST checks the CSRF token; a token or session of another fleet is a 404."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kernel.db.engine import Database
from kernel.energy import format_kwh
from kernel.models import Fleet, Location, Party, PartyRole, Token
from kernel.models.portal import FleetDriver, FleetVehicle
from kernel.money import round_amount
from kernel.timeutil import to_local, utcnow
from portal import auth, csrf, price, reports, sessions_view
from portal.auth import COOKIE_NAME, SESSION_TTL, LoginResult, Principal, Signer
from portal.forms import clean, parse_amount, read_form
from portal.sessions_view import PAGE_SIZE, SessionFilter, fmt_duration, fmt_kwh, fmt_money

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
PREFIX = "/portal"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class PortalState:
    db: Database
    time_zone: str = "UTC"
    signer: Signer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def get_signer(self) -> Signer:
        if self.signer is None:
            self.signer = await auth.load_signer(self.db)
        return self.signer


class _Redirect(HTTPException):
    def __init__(self, location: str) -> None:
        super().__init__(status_code=303, detail="see other", headers={"Location": location})


async def _drivers_and_vehicles(s: Any, fleet_id: int) -> tuple[Any, Any]:
    """The fleet's drivers (by name) and vehicles (by label)."""
    drivers = (
        await s.scalars(
            select(FleetDriver).where(FleetDriver.fleet_id == fleet_id).order_by(FleetDriver.name)
        )
    ).all()
    vehicles = (
        await s.scalars(
            select(FleetVehicle).where(FleetVehicle.fleet_id == fleet_id).order_by(FleetVehicle.label)
        )
    ).all()
    return drivers, vehicles


def _is_https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip().lower() == "https"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )


def build_router(state: PortalState) -> APIRouter:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters["kwh"] = fmt_kwh
    env.filters["duration"] = fmt_duration
    env.globals["prefix"] = PREFIX
    router = APIRouter()

    def render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
        response = templates.TemplateResponse(request, name, ctx, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def principal(request: Request) -> Principal | None:
        signer = await state.get_signer()
        raw = signer.unsign(request.cookies.get(COOKIE_NAME))
        if not raw:
            return None
        async with state.db.session() as s:
            return await auth.load_principal(s, raw)

    async def require(request: Request) -> Principal:
        p = await principal(request)
        if p is None:
            raise _Redirect(f"{PREFIX}/login")
        return p

    async def posted(request: Request, p: Principal) -> dict[str, str]:
        form = await read_form(request)
        try:
            csrf.check(request, p.csrf_token, form)
        except csrf.CsrfError as exc:
            raise HTTPException(403, str(exc)) from None
        return form

    def page(
        request: Request, p: Principal, name: str, ctx: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        base = {"me": p, "csrf_token": p.csrf_token, "active": name.removesuffix(".html")}
        return render(request, name, {**base, **ctx}, status)

    def back(path: str, message: str | None = None) -> RedirectResponse:
        target = f"{PREFIX}{path}"
        if message:
            target += ("&" if "?" in target else "?") + urlencode({"msg": message})
        return RedirectResponse(target, status_code=303)

    # ---- login / logout -------------------------------------------------------------------------------

    async def login_page(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
        signer = await state.get_signer()
        nonce, cookie = csrf.new_login_nonce(signer)
        response = render(request, "login.html", {"csrf_token": nonce, "error": error}, status)
        _set_cookie(request, response, csrf.LOGIN_COOKIE, cookie, 3600)
        return response

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        if await principal(request) is not None:
            return back("/")
        return await login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        signer = await state.get_signer()
        try:
            csrf.check_login(request, signer, form)
        except csrf.CsrfError:
            return await login_page(request, "Your login form expired; please try again.", 403)
        async with state.db.session() as s:
            result, manager = await auth.authenticate(s, form.get("email", ""), form.get("password", ""))
            raw = await auth.create_session(s, manager) if manager is not None else None
        if result is LoginResult.LOCKED:
            return await login_page(
                request, "Too many failed logins: this account is locked for a while.", 429
            )
        if raw is None:
            return await login_page(request, "Wrong email or password.", 401)
        response = back("/")
        _set_cookie(request, response, COOKIE_NAME, signer.sign(raw), int(SESSION_TTL.total_seconds()))
        response.delete_cookie(csrf.LOGIN_COOKIE, path=PREFIX)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        p = await require(request)
        await posted(request, p)
        signer = await state.get_signer()
        raw = signer.unsign(request.cookies.get(COOKIE_NAME))
        if raw:
            async with state.db.session() as s:
                await auth.end_session(s, raw)
        response = back("/login")
        response.delete_cookie(COOKIE_NAME, path=PREFIX)
        return response

    # ---- dashboard ------------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    async def dashboard(request: Request, month: str | None = None) -> Response:
        p = await require(request)
        today = to_local(utcnow(), state.time_zone).date()
        first, last = reports.month_bounds(month, today)
        async with state.db.session() as s:
            d = await reports.dashboard(s, p.fleet_id, p.currency, state.time_zone, first, last)
        chart = {
            "labels": [day.isoformat() for day, _, _ in d.days],
            "kwh": [format_kwh(k) for _, k, _ in d.days],
            "cost": [str(c) for _, _, c in d.days],
            "currency": p.currency,
        }
        return page(request, p, "dashboard.html", {"d": d, "chart": chart, "month": first.strftime("%Y-%m")})

    # ---- tokens, drivers, vehicles -------------------------------------------------------------------

    async def _fleet_token(s: Any, p: Principal, token_id: int) -> Token:
        tok = await s.get(Token, token_id, with_for_update=True)
        if tok is None or tok.fleet_id != p.fleet_id:
            raise HTTPException(404, "no such token")
        return tok

    @router.get("/tokens", response_class=HTMLResponse)
    async def tokens_page(request: Request, msg: str | None = None) -> Response:
        p = await require(request)
        async with state.db.session() as s:
            tokens = (
                (await s.execute(select(Token).where(Token.fleet_id == p.fleet_id).order_by(Token.uid)))
                .scalars()
                .all()
            )
            drivers, vehicles = await _drivers_and_vehicles(s, p.fleet_id)
        return page(
            request,
            p,
            "tokens.html",
            {"tokens": tokens, "drivers": drivers, "vehicles": vehicles, "msg": msg},
        )

    @router.post("/tokens")
    async def add_token(request: Request) -> Response:
        p = await require(request)
        form = await posted(request, p)
        uid = clean(form.get("uid"), 36)
        if not uid:
            return back("/tokens", "A token needs its UID.")
        async with state.db.session() as s:
            fleet = await s.get(Fleet, p.fleet_id)
            assert fleet is not None
            party = await s.get(Party, fleet.emsp_id) if fleet.emsp_id else None
            if party is None:
                party = (
                    await s.execute(select(Party).where(Party.role == PartyRole.HUB).limit(1))
                ).scalar_one_or_none()
            cc, pid = (party.country_code, party.party_id) if party else ("ZZ", "EVH")
            exists = await s.execute(
                select(Token.id).where(
                    Token.country_code == cc, Token.party_id == pid, Token.uid == uid, Token.type == "RFID"
                )
            )
            if exists.first() is not None:
                return back("/tokens", f"Token {uid} already exists.")
            s.add(
                Token(
                    country_code=cc,
                    party_id=pid,
                    uid=uid,
                    type="RFID",
                    contract_id=clean(form.get("contract_id"), 36) or f"{cc}-{pid}-{uid}"[:36],
                    visual_number=clean(form.get("visual_number"), 64),
                    issuer=fleet.name[:64],
                    emsp_id=fleet.emsp_id,
                    fleet_id=fleet.id,
                    valid=True,
                    whitelist="ALLOWED",
                    last_updated=utcnow(),
                )
            )
        return back("/tokens", f"Token {uid} added.")

    @router.post("/tokens/{token_id}/block")
    async def block_token(request: Request, token_id: int) -> Response:
        return await _set_valid(request, token_id, False)

    @router.post("/tokens/{token_id}/unblock")
    async def unblock_token(request: Request, token_id: int) -> Response:
        return await _set_valid(request, token_id, True)

    async def _set_valid(request: Request, token_id: int, valid: bool) -> Response:
        p = await require(request)
        await posted(request, p)
        async with state.db.session() as s:
            tok = await _fleet_token(s, p, token_id)
            tok.valid = valid
            tok.last_updated = utcnow()
            uid = tok.uid
        return back("/tokens", f"Token {uid} {'unblocked' if valid else 'blocked'}.")

    @router.post("/tokens/{token_id}/assign")
    async def assign_token(request: Request, token_id: int) -> Response:
        p = await require(request)
        form = await posted(request, p)
        async with state.db.session() as s:
            tok = await _fleet_token(s, p, token_id)
            if "driver_id" in form:
                driver = None
                if form["driver_id"]:
                    driver = await s.get(
                        FleetDriver, int(form["driver_id"]) if form["driver_id"].isdigit() else 0
                    )
                    if driver is None or driver.fleet_id != p.fleet_id:
                        raise HTTPException(404, "no such driver")
                tok.driver_name = driver.name if driver else None
                tok.driver_email = driver.email if driver else None
            if "vehicle_id" in form:
                vehicle = None
                if form["vehicle_id"]:
                    raw = form["vehicle_id"]
                    vehicle = await s.get(FleetVehicle, int(raw) if raw.isdigit() else 0)
                    if vehicle is None or vehicle.fleet_id != p.fleet_id:
                        raise HTTPException(404, "no such vehicle")
                tok.vehicle = vehicle.label if vehicle else None
            tok.last_updated = utcnow()
            uid = tok.uid
        return back("/tokens", f"Token {uid} assigned.")

    @router.post("/tokens/{token_id}/limit")
    async def set_limit(request: Request, token_id: int) -> Response:
        p = await require(request)
        form = await posted(request, p)
        try:
            amount = parse_amount(form.get("monthly_limit", ""))
        except ValueError as exc:
            return back("/tokens", str(exc))
        async with state.db.session() as s:
            tok = await _fleet_token(s, p, token_id)
            tok.monthly_limit = round_amount(amount, p.currency) if amount is not None else None
            tok.limit_currency = p.currency if amount is not None else None
            tok.last_updated = utcnow()
            uid = tok.uid
        text = f"{amount} {p.currency}" if amount is not None else "none"
        return back("/tokens", f"Monthly limit of {uid}: {text}.")

    @router.get("/drivers", response_class=HTMLResponse)
    async def drivers_page(request: Request, msg: str | None = None) -> Response:
        p = await require(request)
        async with state.db.session() as s:
            drivers, vehicles = await _drivers_and_vehicles(s, p.fleet_id)
            tokens = (await s.execute(select(Token).where(Token.fleet_id == p.fleet_id))).scalars().all()
        by_driver: dict[str, list[str]] = {}
        by_vehicle: dict[str, list[str]] = {}
        for t in tokens:
            if t.driver_name:
                by_driver.setdefault(t.driver_name, []).append(t.uid)
            if t.vehicle:
                by_vehicle.setdefault(t.vehicle, []).append(t.uid)
        return page(
            request,
            p,
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
        p = await require(request)
        form = await posted(request, p)
        name = clean(form.get("name"), 200)
        email = clean(form.get("email"), 254)
        if not name:
            return back("/drivers", "A driver needs a name.")
        if email and ("@" not in email or any(c in email for c in "\r\n <>")):
            return back("/drivers", f"Not an email address: {email}")
        try:
            async with state.db.session() as s:
                s.add(FleetDriver(fleet_id=p.fleet_id, name=name, email=email.lower() if email else None))
        except IntegrityError:
            return back("/drivers", f"Driver {name} already exists.")
        return back("/drivers", f"Driver {name} added.")

    @router.post("/vehicles")
    async def add_vehicle(request: Request) -> Response:
        p = await require(request)
        form = await posted(request, p)
        label = clean(form.get("label"), 100)
        if not label:
            return back("/drivers", "A vehicle needs a name.")
        try:
            async with state.db.session() as s:
                s.add(FleetVehicle(fleet_id=p.fleet_id, label=label, plate=clean(form.get("plate"), 20)))
        except IntegrityError:
            return back("/drivers", f"Vehicle {label} already exists.")
        return back("/drivers", f"Vehicle {label} added.")

    # ---- sessions ---------------------------------------------------------------------------------------

    @router.get("/sessions", response_class=HTMLResponse)
    async def sessions_page(request: Request) -> Response:
        p = await require(request)
        q = dict(request.query_params)
        flt = SessionFilter.from_query(q)
        page_no = int(q["page"]) if q.get("page", "").isdigit() and int(q["page"]) > 0 else 1
        async with state.db.session() as s:
            total = await sessions_view.count_sessions(s, p.fleet_id, flt, state.time_zone)
            rows = await sessions_view.fetch_sessions(
                s, p.fleet_id, flt, state.time_zone, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE
            )
            choices = await sessions_view.fleet_filter_choices(s, p.fleet_id)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        query = flt.as_query()
        return page(
            request,
            p,
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
        p = await require(request)
        flt = SessionFilter.from_query(dict(request.query_params))
        async with state.db.session() as s:
            rows = await sessions_view.fetch_sessions(s, p.fleet_id, flt, state.time_zone)
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
        p = await require(request)
        async with state.db.session() as s:
            found = await sessions_view.session_detail(s, p.fleet_id, session_id, state.time_zone)
        if found is None:
            raise HTTPException(404, "no such session")
        row, cdrs, sess = found
        breakdowns = []
        for cdr in cdrs:
            columns, lines = sessions_view.explanation_lines(cdr.explanation)
            breakdowns.append({"cdr": cdr, "columns": columns, "lines": lines})
        return page(
            request,
            p,
            "session.html",
            {"r": row, "sess": sess, "breakdowns": breakdowns, "fmt_money": fmt_money},
        )

    # ---- monthly report ---------------------------------------------------------------------------------

    async def _report(p: Principal, month: str | None) -> reports.MonthlyReport:
        today = to_local(utcnow(), state.time_zone).date()
        first, last = reports.month_bounds(month, today)
        async with state.db.session() as s:
            return await reports.monthly_report(
                s, p.fleet_id, p.fleet_name, p.currency, state.time_zone, first, last
            )

    @router.get("/reports", response_class=HTMLResponse)
    async def report_page(request: Request, month: str | None = None) -> Response:
        p = await require(request)
        rep = await _report(p, month)
        return page(
            request,
            p,
            "report.html",
            {
                "rep": rep,
                "month": rep.first.strftime("%Y-%m"),
                "fmt_money": fmt_money,
                "today": to_local(utcnow(), state.time_zone).date(),
            },
        )

    @router.get("/reports.csv")
    async def report_csv(request: Request, month: str | None = None) -> Response:
        p = await require(request)
        rep = await _report(p, month)
        name = f"evhub-{rep.first.strftime('%Y-%m')}.csv"
        return Response(
            reports.monthly_csv(rep),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    # ---- live price ---------------------------------------------------------------------------------------

    @router.get("/price", response_class=HTMLResponse)
    async def price_page(request: Request, location: str | None = None) -> Response:
        p = await require(request)
        async with state.db.session() as s:
            locations = (
                await s.execute(
                    select(Location.id, Location.name, Location.address, Location.city)
                    .where(Location.publish.is_(True))
                    .order_by(Location.name, Location.id)
                )
            ).all()
            quote = None
            if location and location.isdigit():
                quote = await price.live_price(s, int(location), p.currency)
        return page(
            request,
            p,
            "price.html",
            {
                "locations": locations,
                "quote": quote,
                "selected": int(location) if location and location.isdigit() else None,
            },
        )

    return router
