"""Fixtures of the portal tests: a running hub with only the portal, an SMTP sink, a headless chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from evhub.app import RunningHub
from kernel.db.engine import Database
from kernel.settings import load_settings
from portal.component import PortalComponent
from portal.smtp import SmtpSink, start_smtp_sink
from tests.conftest import free_port

CHROMIUM = os.environ.get("EVHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[SmtpSink]:
    s = await start_smtp_sink(tmp_path / "mail", refuse=lambda addr: "bounce" in addr)
    try:
        yield s
    finally:
        await s.stop()


async def start_hub(db: Database, smtp_url: str = "", **portal_kw: object) -> RunningHub:
    settings = load_settings(
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=free_port(),
        auto_migrate=True,
        smtp_url=smtp_url,
        mail_from="receipts@evhub.test",
        log_level="WARNING",
    )
    portal_kw.setdefault("time_zone", "Europe/Berlin")
    portal_kw.setdefault("dispatch_interval", 0.3)
    portal_kw.setdefault("scan_interval", 3600)
    hub = RunningHub(settings, components=[PortalComponent(**portal_kw)])  # type: ignore[arg-type]
    await hub.start()
    return hub


@pytest.fixture
async def hub(db: Database) -> AsyncIterator[RunningHub]:
    running = await start_hub(db)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (scripts/test-setup.sh installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()
