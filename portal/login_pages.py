"""The login form, logging in (with the double-submit CSRF nonce and the lockout's answers) and logging out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from portal import csrf, login
from portal.forms import read_form
from portal.login import COOKIE_NAME, SESSION_TTL, LoginResult
from portal.page_kit import PREFIX, PageKit, back, set_cookie

LOGIN_NONCE_MAX_AGE = 3600  # seconds a login form stays usable


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    state = kit.state

    async def login_page(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
        signer = await state.get_signer()
        nonce, cookie = csrf.new_login_nonce(signer)
        response = kit.render(request, "login.html", {"csrf_token": nonce, "error": error}, status)
        set_cookie(request, response, csrf.LOGIN_COOKIE, cookie, LOGIN_NONCE_MAX_AGE)
        return response

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        if await kit.current_manager(request) is not None:
            return back("/")
        return await login_page(request)

    @router.post("/login")
    async def log_in(request: Request) -> Response:
        form = await read_form(request)
        signer = await state.get_signer()
        try:
            csrf.check_login(request, signer, form)
        except csrf.CsrfError:
            return await login_page(request, "Your login form expired; please try again.", 403)
        async with state.db.session() as db_session:
            result, manager = await login.authenticate(
                db_session, form.get("email", ""), form.get("password", "")
            )
            raw = await login.open_login_session(db_session, manager) if manager is not None else None
        if result is LoginResult.LOCKED:
            return await login_page(
                request, "Too many failed logins: this account is locked for a while.", 429
            )
        if raw is None:
            return await login_page(request, "Wrong email or password.", 401)
        response = back("/")
        set_cookie(request, response, COOKIE_NAME, signer.sign(raw), int(SESSION_TTL.total_seconds()))
        response.delete_cookie(csrf.LOGIN_COOKIE, path=PREFIX)
        return response

    @router.post("/logout")
    async def log_out(request: Request) -> Response:
        manager = await kit.require_manager(request)
        await kit.posted_form(request, manager)
        signer = await state.get_signer()
        raw = signer.unsign(request.cookies.get(COOKIE_NAME))
        if raw:
            async with state.db.session() as db_session:
                await login.end_login_session(db_session, raw)
        response = back("/login")
        response.delete_cookie(COOKIE_NAME, path=PREFIX)
        return response

    return router
