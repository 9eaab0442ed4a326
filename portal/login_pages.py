"""The login form, logging in (with the double-submit CSRF nonce and the throttle's answers) and logging out.

A wrong e-mail or password is 401; a lock of this account from this client, or a throttled client or account,
is 429 with Retry-After and the wait in words; a saturated password pool is 503 with Retry-After."""

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

    async def login_page(
        request: Request, error: str | None = None, status: int = 200, headers: dict[str, str] | None = None
    ) -> HTMLResponse:
        signer = await state.get_signer()
        nonce, cookie = csrf.new_login_nonce(signer)
        response = kit.render(request, "login.html", {"csrf_token": nonce, "error": error}, status)
        response.headers.update(headers or {})
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
        client = request.client.host if request.client is not None else None
        outcome = await login.authenticate(
            state.db,
            signer,
            state.passwords,
            form.get("email", ""),
            form.get("password", ""),
            client,
        )
        wait = {"Retry-After": str(outcome.retry_after)} if outcome.retry_after else {}
        if outcome.result is LoginResult.LOCKED:
            return await login_page(
                request,
                "Too many failed logins: this account is locked from here for "
                f"{_in_words(outcome.retry_after)}. You can still log in from another device.",
                429,
                wait,
            )
        if outcome.result is LoginResult.THROTTLED:
            return await login_page(
                request,
                f"Too many failed logins; please wait {_in_words(outcome.retry_after)} before trying again.",
                429,
                wait,
            )
        if outcome.result is LoginResult.BUSY:
            return await login_page(
                request, "The login service is busy; please try again in a few seconds.", 503, wait
            )
        if outcome.manager is None:
            return await login_page(request, "Wrong email or password.", 401)
        async with state.db.session() as db_session:
            raw = await login.open_login_session(db_session, outcome.manager)
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


def _in_words(seconds: int) -> str:
    """A wait as people say it: "40 seconds", "1 minute", "15 minutes"."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
