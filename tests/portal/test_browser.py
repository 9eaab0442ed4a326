"""The portal in a real browser (Playwright driving Debian's headless chromium): login, the dashboard chart,
blocking a token (and the gateway then refusing it), the sessions filter and its CSV export, the other pages.

With ``EVHUB_PORTAL_SCREENSHOTS=1`` the screenshots are written to docs/screenshots/ (otherwise to tmp).
"""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from evhub.app import RunningHub
from kernel.db.engine import Database
from kernel.models import Connector, TariffVersion, Token
from kernel.timeutil import utcnow
from tests.portal.helpers import TARIFF
from tests.world.fleets import PASSWORD, add_fleet_with_manager, add_session, add_token, base_world

DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def _seed(db: Database):
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme Logistics", "boss@acme.test")
    await add_fleet_with_manager(db, world, "Globex", "boss@globex.test")
    await add_token(
        db, world, "Acme Logistics", "ACME01", driver="Alice Meyer", email="alice@acme.test", vehicle="Van 1"
    )
    await add_token(db, world, "Acme Logistics", "ACME02", driver="Bob Schulz", vehicle="Van 2")
    await add_token(db, world, "Acme Logistics", "ACME03", driver="Chris Wagner", vehicle="e-Truck 7")
    await add_token(db, world, "Globex", "GLOBEX1", driver="Gina", vehicle="Truck")
    now = utcnow()
    month_start = now.replace(day=1, hour=6, minute=0, second=0, microsecond=0)
    span = max((now - month_start).total_seconds() - 7200, 3600)
    uids = ["ACME01", "ACME02", "ACME03", "ACME01", "ACME02", "ACME01"]
    for i in range(18):
        start = month_start + timedelta(seconds=span * i / 18)
        await add_session(db, world, uids[i % len(uids)], start, str(8 + (i * 7) % 31))
    await add_session(db, world, "GLOBEX1", month_start, "40")
    async with db.session() as s:
        s.add(
            Connector(
                evse_pk=world.evse_pk,
                connector_id="1",
                standard="IEC_62196_T2",
                format="SOCKET",
                power_type="AC_3_PHASE",
                max_voltage=400,
                max_amperage=32,
                tariff_ids=["AC-STD"],
                last_updated=now,
            )
        )
        s.add(
            TariffVersion(
                cpo_id=world.cpo_id,
                tariff_id="AC-STD",
                version=1,
                currency="EUR",
                data=TARIFF,
                last_updated=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
    return world


async def test_portal_in_a_real_browser(db: Database, hub: RunningHub, browser, tmp_path: Path) -> None:
    world = await _seed(db)
    shots = DOCS_SHOTS if os.environ.get("EVHUB_PORTAL_SCREENSHOTS") == "1" else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    base = hub.hub.endpoints["http"]
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Login (a wrong password first).
    await page.goto(f"{base}/portal/")
    assert page.url.endswith("/portal/login")
    await page.screenshot(path=str(shots / "login.png"))
    await page.fill("input[name=email]", "boss@acme.test")
    await page.fill("input[name=password]", "not it")
    await page.click("button[type=submit]")
    assert "Wrong email or password" in await page.text_content("p.error")
    await page.fill("input[name=email]", "boss@acme.test")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/portal/")

    # Dashboard: the Chart.js chart rendered with one point per day of the month.
    await page.wait_for_selector("#daily-chart[data-rendered=true]")
    info = await page.evaluate(
        """() => { const c = window.evhubDailyChart; const cv = document.getElementById('daily-chart');
                   return {n: c.data.labels.length, sets: c.data.datasets.length,
                           kwh: c.data.datasets[1].data.reduce((a, b) => a + b, 0),
                           w: cv.width, h: cv.height, ink: (() => { const d = cv.getContext('2d')
                             .getImageData(0, 0, cv.width, cv.height).data; let n = 0;
                             for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) n++; } return n; })()}; }"""
    )
    today = utcnow()
    import calendar

    assert info["n"] == calendar.monthrange(today.year, today.month)[1]
    assert info["sets"] == 2 and info["w"] > 300 and info["h"] > 100 and info["ink"] > 1000
    assert info["kwh"] > 0
    assert await page.text_content("#total-sessions") == "18"
    assert "Alice Meyer" in await page.text_content("#top-drivers")
    assert "Gina" not in await page.content()
    await page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

    # Tokens: block ACME01; the gateway's authorizer then refuses it.
    await page.click("nav >> text=Tokens")
    row = page.locator("tr[data-uid=ACME01]")
    await row.locator("button:has-text('Block')").click()
    await page.wait_for_selector("tr[data-uid=ACME01] .bad")
    assert "Token ACME01 blocked." in await page.text_content("p.msg")
    await page.locator("tr[data-uid=ACME02] input[name=monthly_limit]").fill("200")
    await page.locator("tr[data-uid=ACME02] button:has-text('Set')").click()
    await page.wait_for_selector("p.msg")
    await page.screenshot(path=str(shots / "tokens.png"), full_page=True)
    async with db.session() as s:
        tok = await s.get(Token, world.tokens["ACME01"])
        assert tok is not None and tok.valid is False
    from cpo_gateway.authorization import BLOCKED, Authorizer

    decision = await Authorizer(db).authorize("ACME01", charge_point_id=world.charge_point_id)
    assert decision.status == BLOCKED
    assert (await Authorizer(db).authorize("ACME02", charge_point_id=world.charge_point_id)).accepted

    # Sessions: filter by driver, the table and the CSV export agree.
    await page.click("nav >> text=Sessions")
    await page.select_option("select[name=driver]", "Alice Meyer")
    await page.click("#filters button[type=submit]")
    await page.wait_for_url("**driver=Alice+Meyer**")
    shown = await page.locator("#sessions tbody tr[data-session]").evaluate_all(
        "rows => rows.map(r => r.dataset.session)"
    )
    assert len(shown) == 9
    async with page.expect_download() as dl_info:
        await page.click("#csv-export")
    download = await dl_info.value
    target = tmp_path / "sessions.csv"
    await download.save_as(str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["session_id"] for r in rows] == shown
    assert {r["driver"] for r in rows} == {"Alice Meyer"}
    await page.screenshot(path=str(shots / "sessions.png"), full_page=True)

    # One session's price breakdown, the drivers page, the report, the live price.
    await page.locator("#sessions tbody a").first.click()
    await page.wait_for_selector("table.breakdown")
    await page.screenshot(path=str(shots / "session.png"), full_page=True)
    await page.click("nav >> text=Drivers")
    await page.fill("form[action$='/drivers'] input[name=name]", "Dana Roth")
    await page.fill("form[action$='/drivers'] input[name=email]", "dana@acme.test")
    await page.click("form[action$='/drivers'] button")
    await page.wait_for_selector("text=Driver Dana Roth added.")
    await page.screenshot(path=str(shots / "drivers.png"), full_page=True)
    await page.click("nav >> text=Monthly report")
    await page.wait_for_selector("article.report")
    await page.screenshot(path=str(shots / "report.png"), full_page=True)
    await page.click("nav >> text=Live price")
    await page.click("button:has-text('Quote')")
    await page.wait_for_selector(".quote-total")
    assert (await page.text_content(".quote-total")).strip() == "10.71 EUR"  # 20 kWh x 0.40 + 1.00, +19 %
    await page.screenshot(path=str(shots / "price.png"), full_page=True)

    # Logout ends the session.
    await page.click("header button:has-text('Log out')")
    await page.wait_for_url(f"{base}/portal/login")
    await page.goto(f"{base}/portal/sessions")
    assert page.url.endswith("/portal/login")
    assert errors == []
    await context.close()
