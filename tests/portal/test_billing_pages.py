"""The fleet portal's billing pages over HTTP (in-process): invoices and credit notes with their status, the PDF
with its embedded Factur-X XML, balance, overdue amount and dunning state, the statement and its CSV, the
manager's locale, fleet isolation (another fleet's invoice, PDF and balance are never shown: 404), and a portal
without billing (no pages, no menu entry)."""

from __future__ import annotations

import csv
import email
import io
import json
import re
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from types import SimpleNamespace
from typing import Any

import httpx
from sqlalchemy import select

from billing.component import cdr_hook as billing_cdr_hook
from billing.desk import Desk
from billing.einvoice import embedded_xml
from billing.store.credits import credit_document
from billing.store.issuing import document_of
from kernel.db.engine import Database
from kernel.models import BillingIssuer, Cdr, Token
from kernel.outbox import OutboxDispatcher, register_channel
from kernel.seams import Services
from kernel.timeutil import utcnow
from portal.component import ReceiptHook
from portal.receipts import CHANNEL, make_email_sender
from portal.smtp import SmtpConfig, SmtpSink
from simulators.localstripe import CARD_OK, PUBLISHABLE_KEY, LocalStripe
from tests.billing import reports_kit as rk
from tests.portal.helpers import csrf_token, login, portal_client
from tests.world.fleets import FleetWorld, add_fleet_with_manager, add_session, add_token, base_world


async def _world(db: Database) -> Any:
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
    async with db.session() as s:  # Globex's invoice credited in full by an operator
        note = await credit_document(s, other.number, reason="Charger fault", issue_date=date(2026, 6, 10))
    return SimpleNamespace(
        overdue=overdue, paid=paid, other=other, note=note, acme=acme_acc, globex=globex_acc
    )


async def test_billing_page_statement_pdf_and_isolation(db: Database) -> None:
    w = await _world(db)
    overdue, paid, other = w.overdue, w.paid, w.other
    app = rk.billing_portal_app(db)
    async with portal_client(app) as client:
        anonymous = await client.get("/portal/billing", follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/portal/login"
        await login(client, "boss@acme.test")
        page = await client.get("/portal/billing")
        assert page.status_code == 200, page.text
        html = page.text
        assert 'href="/portal/billing"' in html  # the menu entry
        assert overdue.number in html and paid.number in html
        assert other.number not in html  # Globex's
        # balance and overdue: only the overdue invoice is outstanding
        due = overdue.payable
        assert f'id="balance-EUR">€{due}' in html and f'id="overdue-EUR">€{due}' in html
        assert "blocked" in html and f"until invoice {overdue.number} is paid" in html
        assert ">overdue<" in html and ">paid<" in html
        # the PDF: an attachment, with the invoice's EN 16931 XML embedded
        assert f'href="/portal/billing/accounts/{w.acme}/documents/{overdue.id}"' in html
        pdf = await client.get(f"/portal/billing/accounts/{w.acme}/documents/{overdue.id}")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"] == f'attachment; filename="{overdue.number}.pdf"'
        assert pdf.content.startswith(b"%PDF")
        assert overdue.number.encode() in embedded_xml(pdf.content)
        # another fleet's document (through its account or through ours) and one that does not exist: 404
        for account, doc in (
            (w.globex, other.id),
            (w.acme, other.id),
            (w.acme, 999999),
            (w.globex, w.note.id),
        ):
            assert (
                await client.get(f"/portal/billing/accounts/{account}/documents/{doc}")
            ).status_code == 404
        assert (await client.get(f"/portal/billing/documents/{overdue.number}")).status_code == 404  # gone
        # another fleet's account: 404
        assert (await client.get(f"/portal/billing/accounts/{w.globex}/payment-method")).status_code == 404
        theirs = await client.post(
            f"/portal/billing/accounts/{w.globex}/payment-method",
            data={"setup_intent_id": "seti_1", "csrf_token": csrf_token(html)},
        )
        assert theirs.status_code == 404
        # the statement: documents, payments, aging; and its CSV
        st = await client.get("/portal/billing/statement")
        assert st.status_code == 200 and "pi_paid" not in st.text and paid.number in st.text
        assert other.number not in st.text
        exported = await client.get("/portal/billing/statement.csv")
        assert exported.headers["content-disposition"].startswith("attachment;")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        documents = {r["number"]: r for r in rows if r["record"] == "document"}
        assert set(documents) == {overdue.number, paid.number}
        assert documents[overdue.number]["status"] == "overdue"
        assert documents[paid.number]["outstanding"] == "0.00"
        [payment] = [r for r in rows if r["record"] == "payment"]
        assert payment["number"] == paid.number and payment["amount"] == str(paid.payable)
        aging = {r["kind"]: r["amount"] for r in rows if r["record"] == "aging"}
        assert aging["0-30"] == str(due) and aging["current"] == "0.00"
    async with portal_client(app) as globex:
        await login(globex, "boss@globex.test")
        page = await globex.get("/portal/billing")
        assert other.number in page.text and overdue.number not in page.text
        assert "Nothing is overdue." in page.text
        assert f"Credit note for {other.number}" in page.text and ">credited<" in page.text
        assert 'id="balance-EUR">€0.00' in page.text
        note_pdf = await globex.get(f"/portal/billing/accounts/{w.globex}/documents/{w.note.id}")
        assert note_pdf.status_code == 200 and w.note.number.encode() in embedded_xml(note_pdf.content)
        for account in (w.globex, w.acme):
            theirs = await globex.get(f"/portal/billing/accounts/{account}/documents/{overdue.id}")
            assert theirs.status_code == 404


async def test_billing_page_in_the_managers_locale(db: Database) -> None:
    w = await _world(db)
    app = rk.billing_portal_app(db)
    async with portal_client(app, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}) as client:
        await login(client, "boss@acme.test")
        html = (await client.get("/portal/billing")).text
    due = w.overdue.payable
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


# ------------------------------------------------------------------------------ the receipt becomes the invoice


async def _ad_hoc_driver(db: Database, world: FleetWorld, uid: str, email: str) -> int:
    """A token without a fleet (a driver without a contract)."""
    async with db.session() as s:
        tok = Token(
            country_code="DE",
            party_id="CPO",
            uid=uid,
            contract_id=f"DE-CPO-{uid}",
            issuer="Charge GmbH",
            driver_name="Dora Adhoc",
            driver_email=email,
            last_updated=utcnow(),
        )
        s.add(tok)
        await s.flush()
        world.tokens[uid] = tok.id
        return tok.id


async def _send_all(db: Database, sink: SmtpSink) -> list[EmailMessage]:
    register_channel(
        CHANNEL,
        make_email_sender(db, lambda: SmtpConfig.from_url(sink.url), "receipts@evhub.test", lambda: Desk(db)),
    )
    await OutboxDispatcher(db, channels=[CHANNEL]).drain()
    return [email.message_from_bytes(p.read_bytes(), policy=default_policy) for p in sink.messages()]


async def test_receipt_of_a_session_invoice_is_the_invoice(db: Database, sink: SmtpSink) -> None:
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice", email="alice@acme.test")
    await _ad_hoc_driver(db, world, "ADHOC1", "dora@example.test")
    await rk.add_issuer(db)
    start = datetime(2026, 6, 10, 8, tzinfo=UTC)
    _, adhoc_cdr = await add_session(db, world, "ADHOC1", start, "12.5")
    _, fleet_cdr = await add_session(db, world, "ACME01", start, "7")
    assert adhoc_cdr and fleet_cdr
    async with db.session() as s:  # the issuer sells for the CPO: its drivers without a contract are invoiced
        issuer = (await s.scalars(select(BillingIssuer).where(BillingIssuer.key == rk.ISSUER_KEY))).one()
        issuer.party_id = world.cpo_id
    receipt = ReceiptHook(Services(billing=Desk(db)))
    async with (
        db.session() as s
    ):  # as pricing runs them: billing's hook, then the receipt's, in one transaction
        for cdr_id in (adhoc_cdr, fleet_cdr):
            cdr = await s.get(Cdr, cdr_id)
            assert cdr is not None
            for _ in range(2):  # twice: issued once, queued once
                await billing_cdr_hook(s, cdr)
                await receipt(s, cdr)
    async with db.session() as s:
        doc = await document_of(s, adhoc_cdr, "invoice")
        assert doc is not None and doc.account_id is not None
        assert (
            await document_of(s, fleet_cdr, "invoice") is None
        )  # a fleet's CDR waits for the monthly invoice
        number, payable = doc.number, doc.payable
    messages = {m["To"]: m for m in await _send_all(db, sink)}
    assert set(messages) == {"dora@example.test", "alice@acme.test"}
    invoice_mail = messages["dora@example.test"]
    assert invoice_mail["Subject"].startswith(f"Invoice {number}: Alexanderplatz, 2026-06-10")
    text = invoice_mail.get_body(preferencelist=("plain",)).get_content()
    html = invoice_mail.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        assert number in body and "EVH Mobility GmbH" in body and "DE123456789" in body  # seller, VAT id
        assert "Dora Adhoc" in body and "12.500 kWh" in body
    assert f"Amount due: €{payable}" in text and "Signed meter data" in text
    assert '<span class="number">' in html and "Signed meter data" in html
    files = {a.get_filename(): a for a in invoice_mail.iter_attachments()}
    async with db.session() as s:
        adhoc = await s.get(Cdr, adhoc_cdr)
        assert adhoc is not None
    assert set(files) == {f"{number}.pdf", f"signed-meter-data-{adhoc.cdr_uid}.txt"}
    pdf = files[f"{number}.pdf"].get_content()
    assert pdf.startswith(b"%PDF") and number.encode() in embedded_xml(pdf)
    # the fleet driver's CDR has no per-session invoice: the receipt as it always was
    receipt = messages["alice@acme.test"]
    assert receipt["Subject"].startswith("Your charging receipt: Alexanderplatz")
    assert next(a.get_filename() for a in receipt.iter_attachments()).startswith("signed-meter-data-")
    assert not any(a.get_content_type() == "application/pdf" for a in receipt.iter_attachments())


# ------------------------------------------------------------------------------------------ the payment method


async def test_payment_method_page_csp_and_confirmation(db: Database, localstripe: LocalStripe) -> None:
    w = await _world(db)
    account_id = w.acme
    app = rk.billing_portal_app(db, **rk.stripe_settings(localstripe))
    async with portal_client(app) as client:
        await login(client, "boss@acme.test")
        page = await client.get(f"/portal/billing/accounts/{account_id}/payment-method")
        assert page.status_code == 200, page.text
        csp = page.headers["content-security-policy"]
        origin = localstripe.url  # http://127.0.0.1:PORT, the script's origin and nothing more
        assert f"script-src 'self' {origin};" in csp and f"connect-src 'self' {origin};" in csp
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert f'<script src="{localstripe.js_url}"></script>' in page.text
        other_pages = (await client.get("/portal/billing")).headers["content-security-policy"]
        assert origin not in other_pages  # only this page allows the provider
        secret = re.search(r'data-client-secret="([^"]+)"', page.text)
        assert secret is not None
        intent_id = secret.group(1).split("_secret_")[0]
        # what localstripe-v3.js's confirmCardSetup posts from the browser: the publishable key only
        async with httpx.AsyncClient(timeout=60.0) as browser:
            confirmed = await browser.post(
                f"{localstripe.url}/v1/setup_intents/{intent_id}/confirm",
                content=json.dumps(
                    {
                        "key": PUBLISHABLE_KEY,
                        "use_stripe_sdk": True,
                        "client_secret": secret.group(1),
                        "payment_method_data": {
                            "type": "card",
                            "card": {"number": CARD_OK, "exp_month": "12", "exp_year": "2030", "cvc": "123"},
                            "billing_details": {"address": {"postal_code": "10115"}},
                        },
                    }
                ),
            )
        assert confirmed.status_code == 200 and confirmed.json()["status"] == "succeeded", confirmed.text
        form = {"setup_intent_id": intent_id}
        path = f"/portal/billing/accounts/{account_id}/payment-method"
        assert (await client.post(path, data=form)).status_code == 403  # no CSRF token
        done = await client.post(
            path, data={**form, "csrf_token": csrf_token(page.text)}, follow_redirects=True
        )
        assert "Payment method added: card •••• 4242" in done.text
        assert 'id="payment-method-EUR">card •••• 4242' in done.text
        again = await client.post(path, data={"setup_intent_id": "nope", "csrf_token": csrf_token(page.text)})
        assert again.status_code == 303 and "not+confirmed" in again.headers["location"]
