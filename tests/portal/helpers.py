"""What the portal tests share: the portal served in-process (an ASGI client, no socket) or as a running hub,
logging in through the login form, the CSRF token of a page, waiting for a condition, and the AC tariff."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from evhub.app import RunningHub, create_app
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.settings import load_settings
from portal.component import PortalComponent
from tests.world.fleets import PASSWORD

PORTAL_TIME_ZONE = "Europe/Berlin"

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')

TARIFF: dict[str, Any] = {
    "country_code": "DE",
    "party_id": "CPO",
    "id": "AC-STD",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.40", "vat": "19", "step_size": 1},
                {"type": "FLAT", "price": "1.00", "vat": "19", "step_size": 1},
            ]
        }
    ],
    "last_updated": "2025-01-01T00:00:00Z",
}
"""An AC tariff of the seeded CPO: 0.40 EUR/kWh plus 1.00 EUR per session, 19 % VAT on both."""


def portal_app(db: Database) -> FastAPI:
    """The HTTP app with only the portal installed (nothing started: no jobs, no dispatcher, no socket)."""
    settings = load_settings(database_url=db.url, log_level="WARNING", _env_file=None)
    hub = Hub(settings=settings, db=db, node_name="portal-test")
    app = create_app(hub)
    hub.app = app
    PortalComponent(time_zone=PORTAL_TIME_ZONE, scan_interval=3600).install(hub)
    return app


def portal_client(app: FastAPI, **client_kw: Any) -> httpx.AsyncClient:
    """An HTTP client talking to ``app`` in-process, with its own cookie jar."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://portal.test", **client_kw
    )


async def start_hub(db: Database, smtp_url: str = "", **portal_kw: Any) -> RunningHub:
    """A running hub with only the portal (its scheduled jobs, its e-mail dispatcher, a real HTTP socket)."""
    settings = load_settings(
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=0,
        auto_migrate=True,
        smtp_url=smtp_url,
        mail_from="receipts@evhub.test",
        log_level="WARNING",
    )
    portal_kw.setdefault("time_zone", PORTAL_TIME_ZONE)
    portal_kw.setdefault("dispatch_interval", 0.3)
    portal_kw.setdefault("scan_interval", 3600)
    hub = RunningHub(settings, components=[PortalComponent(**portal_kw)])
    await hub.start()
    return hub


def csrf_token(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = CSRF_RE.search(html)
    assert found, "no CSRF token in page"
    return found.group(1)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """Log in through the login form (its double-submit nonce included); returns the POST's answer."""
    page = await client.get("/portal/login")
    return await client.post(
        "/portal/login", data={"email": email, "password": password, "csrf_token": csrf_token(page.text)}
    )


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() >= deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
