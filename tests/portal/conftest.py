"""Fixtures of the portal tests: the portal app served in-process, a running hub with only the portal (for the
browser), an SMTP sink, a headless chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from evhub.app import RunningHub
from kernel.db.engine import Database
from portal.smtp import SmtpSink, start_smtp_sink
from tests.portal.helpers import portal_app, start_hub

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
    smtp_sink = await start_smtp_sink(tmp_path / "mail", refuse=lambda addr: "bounce" in addr)
    try:
        yield smtp_sink
    finally:
        await smtp_sink.stop()


@pytest.fixture
def app(db: Database) -> FastAPI:
    """The portal's HTTP app on the test database, for :func:`tests.portal.helpers.portal_client`."""
    return portal_app(db)


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
