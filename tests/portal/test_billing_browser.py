"""The billing pages in a real browser (Playwright driving Debian's headless chromium) against a running hub: log
in, the invoice list, the PDF downloaded (a PDF with its factur-x.xml), and a card added through localstripe's
hosted flow (its Stripe.js stand-in loaded under the page's Content-Security-Policy, the SetupIntent confirmed in
the browser, its id posted back with the CSRF token), with no script error and no CSP violation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from billing.einvoice import embedded_xml
from evhub.app import RunningHub
from kernel.db.engine import Database
from kernel.models import BillingAccount
from kernel.settings import load_settings
from portal.component import PortalComponent
from simulators.localstripe import CARD_OK, LocalStripe
from tests.billing import reports_kit as rk
from tests.portal.helpers import PORTAL_TIME_ZONE
from tests.world.fleets import PASSWORD, add_fleet_with_manager, add_session, add_token, base_world


@pytest.fixture
async def billing_hub(db: Database, localstripe: LocalStripe) -> AsyncIterator[RunningHub]:
    settings = load_settings(
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=0,
        auto_migrate=True,
        log_level="WARNING",
        **rk.stripe_settings(localstripe),
    )
    running = RunningHub(
        settings,
        components=[rk.DeskComponent(), PortalComponent(time_zone=PORTAL_TIME_ZONE, scan_interval=3600)],
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_billing_pages_in_a_real_browser(
    db: Database, billing_hub: RunningHub, browser, tmp_path: Path
) -> None:
    world = await base_world(db)
    acme = await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice")
    await rk.add_issuer(db)
    account_id = await rk.add_account(db, acme, "Acme")
    _, cdr = await add_session(db, world, "ACME01", datetime(2026, 6, 2, 8, tzinfo=UTC), "20")
    assert cdr is not None
    invoice = await rk.invoice(db, cdr, account_id, date(2026, 6, 3))
    base = billing_hub.hub.endpoints["http"]
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda msg: problems.append(msg.text) if "Content Security Policy" in msg.text else None,
    )

    await page.goto(f"{base}/portal/login")
    await page.fill("input[name=email]", "boss@acme.test")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/portal/")

    # The invoice list
    await page.click("nav >> text=Billing")
    await page.wait_for_url(f"{base}/portal/billing")
    row = page.locator(f"tr.document[data-number='{invoice.number}']")
    assert await row.count() == 1
    assert "open" in await row.inner_text()
    assert await page.text_content("#payment-method-EUR") is not None
    await page.screenshot(path=str(tmp_path / "billing.png"), full_page=True)

    # The PDF, downloaded: a PDF with the invoice's EN 16931 XML embedded
    async with page.expect_download() as info:
        await row.locator("a.pdf").click()
    download = await info.value
    assert download.suggested_filename == f"{invoice.number}.pdf"
    pdf = Path(await download.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and invoice.number.encode() in embedded_xml(pdf)

    # Add a card through localstripe's hosted flow
    await page.click("#add-payment-method-EUR")
    await page.wait_for_url(f"{base}/portal/billing/accounts/{account_id}/payment-method")
    await page.wait_for_selector("#card-element input[placeholder=number]")
    await page.fill("#card-element input[placeholder=number]", CARD_OK)
    await page.fill("#card-element input[placeholder=exp_month]", "12")
    await page.fill("#card-element input[placeholder=exp_year]", "30")
    await page.fill("#card-element input[placeholder=cvc]", "123")
    await page.fill("#card-element input[placeholder=postal_code]", "10115")
    await page.click("#save-payment-method")
    await page.wait_for_url(f"{base}/portal/billing?msg=*")
    assert "Payment method added: card •••• 4242" in await page.text_content("p.msg")
    assert (await page.text_content("#payment-method-EUR") or "").strip().startswith("card •••• 4242")
    async with db.session() as s:
        account = await s.get(BillingAccount, account_id)
        assert account is not None and account.payment_method_label == "card •••• 4242"
        assert account.payment_method_id and account.provider_customer_id
    assert problems == []
    await context.close()
