"""What every page of the portal shares: the portal's state, the templates with the security headers, the
logged-in manager, CSRF-checked forms, redirects back to a page, and the portal's cookies.

A page module takes a :class:`PageKit` and returns its routes (see :mod:`portal.router`); a page without a
logged-in manager redirects to the login page, a POST without the session's CSRF token is a 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from kernel.db.engine import Database
from kernel.password_checks import PasswordVerifier
from kernel.seams import BillingDesk, Services
from portal import csrf
from portal.forms import read_form
from portal.login import COOKIE_NAME, Principal, Signer, load_principal, load_signer, portal_verifier
from portal.sessions_view import fmt_duration, fmt_kwh

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
    """One portal's database, calendar time zone and cookie signer (loaded on first use when not given), and the
    hub's services (the billing desk, when billing runs in this process)."""

    db: Database
    time_zone: str = "UTC"
    signer: Signer | None = None
    services: Services | None = None
    passwords: PasswordVerifier = field(default_factory=portal_verifier)
    """The portal's own bounded Argon2 pool (logins never wait behind, or hold up, the chargers' checks)."""

    @property
    def billing(self) -> BillingDesk | None:
        """``hub.services.billing``: None when billing does not run here (no billing pages then)."""
        return self.services.billing if self.services is not None else None

    async def get_signer(self) -> Signer:
        if self.signer is None:
            self.signer = await load_signer(self.db)
        return self.signer


class RedirectToLogin(HTTPException):
    """Raised by :meth:`PageKit.require_manager` when nobody is logged in: a 303 to the login page."""

    def __init__(self) -> None:
        super().__init__(status_code=303, detail="see other", headers={"Location": f"{PREFIX}/login"})


def back(path: str, message: str | None = None) -> RedirectResponse:
    """A 303 to the portal page ``path``, carrying ``message`` for the page to show (``?msg=``)."""
    target = f"{PREFIX}{path}"
    if message:
        target += ("&" if "?" in target else "?") + urlencode({"msg": message})
    return RedirectResponse(target, status_code=303)


def _is_https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip().lower() == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """A portal cookie: HttpOnly, SameSite=Lax, scoped to the portal's path, Secure when served over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )


class PageKit:
    """The shared dependencies of the pages of one portal (one :class:`PortalState`)."""

    def __init__(self, state: PortalState) -> None:
        self.state = state
        self.templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
        env = self.templates.env
        env.filters["kwh"] = fmt_kwh
        env.filters["duration"] = fmt_duration
        env.globals["prefix"] = PREFIX

    def render(self, request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
        """The template ``name`` with the portal's security headers."""
        response = self.templates.TemplateResponse(request, name, ctx, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def page(
        self, request: Request, manager: Principal, name: str, ctx: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        """A page of the logged-in portal: the manager, the CSRF token and the active menu entry added."""
        base = {
            "me": manager,
            "csrf_token": manager.csrf_token,
            "active": name.removesuffix(".html"),
            "billing_enabled": self.state.billing is not None,
        }
        return self.render(request, name, {**base, **ctx}, status)

    async def current_manager(self, request: Request) -> Principal | None:
        """The manager whose signed session cookie came with the request, or None."""
        signer = await self.state.get_signer()
        raw = signer.unsign(request.cookies.get(COOKIE_NAME))
        if not raw:
            return None
        async with self.state.db.session() as db_session:
            return await load_principal(db_session, raw)

    async def require_manager(self, request: Request) -> Principal:
        """The logged-in manager; without one the request is redirected to the login page."""
        manager = await self.current_manager(request)
        if manager is None:
            raise RedirectToLogin()
        return manager

    async def posted_form(self, request: Request, manager: Principal) -> dict[str, str]:
        """The POSTed form, once its CSRF token matches the manager's session (else a 403)."""
        form = await read_form(request)
        try:
            csrf.check(request, manager.csrf_token, form)
        except csrf.CsrfError as exc:
            raise HTTPException(403, str(exc)) from None
        return form
