"""The fleet portal's billing pages over HTTP (in-process): invoices and credit notes with their status, the PDF
with its embedded Factur-X XML, balance, overdue amount and dunning state, the statement and its CSV, the
manager's locale, fleet isolation (another fleet's invoice, PDF and balance are never shown: 404), and a portal
without billing (no pages, no menu entry)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from urllib.parse import quote

from billing.einvoice import embedded_xml
from kernel.db.engine import Database
from tests.billing import reports_kit as rk
from tests.portal.helpers import login, portal_client
from tests.world.fleets import add_fleet_with_manager, add_session, add_token, base_world


async def _world(db: Database) -> dict[str, object]:
    """Acme with an overdue invoice (blocked), a paid one and its credit-free history; Globex with one."""
    world = await base_world(db)
    acme = await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    globex = await add_fleet_with_manager(db, world, "Globex", "boss@globex.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice", email="alice@acme.test")
    await add_token(db, world, "Globex", "GLOBEX1", driver="Gina")
    await rk.add_issuer(db)
    acme_acc = await rk.add_account(db, acme, "Acme")
    globex_acc = await rk.add_account(db, globex, "Globex")
    _, c1 = await add_session(db, world, "ACME01", datetime(2026, 5, 10, 8, tzinfo=UTC), "20")
    _, c2 = await add_session(db, world, "ACME01", datetime(2026, 6, 2, 8, tzinfo=UTC), "10")
    _, c3 = await add_session(db, world, "GLOBEX1", datetime(2026, 6, 3, 8, tzinfo=UTC), "30")
    assert c1 and c2 and c3
    overdue = await rk.invoice(db, c1, acme_acc, date(2026, 5, 20))  # due 06-03: overdue on 06-16
    paid = await rk.invoice(db, c2, acme_acc, date(2026, 6, 5))
    other = await rk.invoice(db, c3, globex_acc, date(2026, 6, 6))
    await rk.pay(db, paid, str(paid.payable), datetime(2026, 6, 6, 9, tzinfo=UTC), ref="pi_paid")
    await rk.hold(db, overdue, acme)
    return {"overdue": overdue, "paid": paid, "other": other, "acme": acme_acc}


async def test_billing_page_statement_pdf_and_isolation(db: Database) -> None:
    w = await _world(db)
    overdue, paid, other = w["overdue"], w["paid"], w["other"]
    app = rk.billing_portal_app(db)
    async with portal_client(app) as client:
        anonymous = await client.get("/portal/billing", follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/portal/login"
        await login(client, "boss@acme.test")
        page = await client.get("/portal/billing")
        assert page.status_code == 200, page.text
        html = page.text
        assert 'href="/portal/billing"' in html  # the menu entry
        assert overdue.number in html and paid.number in html  # type: ignore[attr-defined]
        assert other.number not in html  # type: ignore[attr-defined]  # Globex's
        # balance and overdue: only the overdue invoice is outstanding
        due = overdue.payable  # type: ignore[attr-defined]
        assert f'id="balance-EUR">€{due}' in html and f'id="overdue-EUR">€{due}' in html
        assert "blocked" in html and f"until invoice {overdue.number} is paid" in html  # type: ignore[attr-defined]
        assert ">overdue<" in html and ">paid<" in html
        # the PDF: an attachment, with the invoice's EN 16931 XML embedded
        pdf = await client.get(f"/portal/billing/documents/{quote(overdue.number, safe='')}")  # type: ignore[attr-defined]
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"] == f'attachment; filename="{overdue.number}.pdf"'  # type: ignore[attr-defined]
        assert pdf.content.startswith(b"%PDF")
        assert overdue.number.encode() in embedded_xml(pdf.content)  # type: ignore[attr-defined]
        # another fleet's document and a number that does not exist: 404, nothing rendered
        assert (await client.get(f"/portal/billing/documents/{other.number}")).status_code == 404  # type: ignore[attr-defined]
        assert (await client.get("/portal/billing/documents/INV-2026-999999")).status_code == 404
        # another fleet's account: 404
        globex_acc = w["acme"] + 1  # type: ignore[operator]
        assert (await client.get(f"/portal/billing/accounts/{globex_acc}/payment-method")).status_code == 404
        # the statement: documents, payments, aging; and its CSV
        st = await client.get("/portal/billing/statement")
        assert st.status_code == 200 and "pi_paid" not in st.text and paid.number in st.text  # type: ignore[attr-defined]
        assert other.number not in st.text  # type: ignore[attr-defined]
        exported = await client.get("/portal/billing/statement.csv")
        assert exported.headers["content-disposition"].startswith("attachment;")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        documents = {r["number"]: r for r in rows if r["record"] == "document"}
        assert set(documents) == {overdue.number, paid.number}  # type: ignore[attr-defined]
        assert documents[overdue.number]["status"] == "overdue"  # type: ignore[attr-defined]
        assert documents[paid.number]["outstanding"] == "0.00"  # type: ignore[attr-defined]
        [payment] = [r for r in rows if r["record"] == "payment"]
        assert payment["number"] == paid.number and payment["amount"] == str(paid.payable)  # type: ignore[attr-defined]
        aging = {r["kind"]: r["amount"] for r in rows if r["record"] == "aging"}
        assert aging["0-30"] == str(due) and aging["current"] == "0.00"
    async with portal_client(app) as globex:
        await login(globex, "boss@globex.test")
        page = await globex.get("/portal/billing")
        assert other.number in page.text and overdue.number not in page.text  # type: ignore[attr-defined]
        assert "Nothing is overdue." in page.text
        assert (await globex.get(f"/portal/billing/documents/{overdue.number}")).status_code == 404  # type: ignore[attr-defined]


async def test_billing_page_in_the_managers_locale(db: Database) -> None:
    w = await _world(db)
    app = rk.billing_portal_app(db)
    async with portal_client(app, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}) as client:
        await login(client, "boss@acme.test")
        html = (await client.get("/portal/billing")).text
    due = w["overdue"].payable  # type: ignore[attr-defined]
    german = f"{due}".replace(".", ",") + "\xa0€"
    assert f'id="balance-EUR">{german}' in html
    assert "20.05.2026" in html  # the issue date, medium format in German


async def test_portal_without_billing_has_no_billing_pages(db: Database) -> None:
    await _world(db)
    app = rk.billing_portal_app(db, with_billing=False)
    async with portal_client(app) as client:
        await login(client, "boss@acme.test")
        home = await client.get("/portal/")
        assert home.status_code == 200 and 'href="/portal/billing"' not in home.text
        assert (await client.get("/portal/billing")).status_code == 404
        assert (await client.get("/portal/billing/statement.csv")).status_code == 404
