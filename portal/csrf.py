"""CSRF protection for every POST form of the portal.

* Logged in: each session has its own random token (``portal_sessions.csrf_token``) that every form carries
  in the hidden field ``csrf_token``; a POST without the matching token is refused.
* The login form (no session yet): double-submit. The page sets a signed cookie with a random nonce and puts
  the same nonce in the form; the POST must bring both.
* Additionally, a POST whose ``Origin`` header names another host is refused. Cookies are SameSite=Lax.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

from portal.login import Signer

FIELD = "csrf_token"
LOGIN_COOKIE = "evhub_portal_login"


class CsrfError(Exception):
    """A POST without a valid CSRF token."""


def tokens_match(expected: str | None, submitted: str | None) -> bool:
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def check_origin(request: Request) -> None:
    """Refuse a cross-site POST when the browser tells us where it came from."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise CsrfError("cross-origin POST")


def check(request: Request, expected: str, form: dict[str, str]) -> None:
    check_origin(request)
    if not tokens_match(expected, form.get(FIELD)):
        raise CsrfError("missing or wrong CSRF token")


def new_login_nonce(signer: Signer) -> tuple[str, str]:
    """(nonce for the form, signed cookie value)."""
    nonce = secrets.token_urlsafe(24)
    return nonce, signer.sign(nonce)


def check_login(request: Request, signer: Signer, form: dict[str, str]) -> None:
    check_origin(request)
    cookie_nonce = signer.unsign(request.cookies.get(LOGIN_COOKIE))
    if not tokens_match(cookie_nonce, form.get(FIELD)):
        raise CsrfError("missing or wrong CSRF token")
