"""A fleet account's monthly invoice (issue 14): the fleet's CDRs of the month (the account's time zone) priced by
the real engine, to the cent, grouped by driver and vehicle with subtotals, fees from billing_charges, once per
account and month (also under concurrency), late CDRs on the next month's invoice, and the hourly job."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

import billing
from billing.einvoice.cii_xml import cii_xml
from billing.einvoice.html import render_html
from billing.einvoice.pdf import validate_xml
from billing.monthly_job import run_monthly_job
from billing.store.monthly import subtotals
from kernel.clock import pinned
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingCharge, BillingDocumentCdr
from kernel.settings import load_settings
from portal.admin import add_fleet
from tariffs.rating import correct_cdr
from tests.billing.documents_kit import (
    DRIVERS,
    HOOKS,
    cdr_of,
    charge,
    documents,
    issue_month,
    net,
    price_with_parking_outside_vat,
    rate,
    seed_world,
    utc,
)
from tests.billing.einvoice_kit import schematron_failures
from tests.billing.store_kit import without_registration_id
from tests.cli_kit import Cli, one_error


async def _invoiced_cdrs(db: Database, document_id: int) -> set[int]:
    async with db.session() as s:
        return set(
            (
                await s.scalars(
                    select(BillingDocumentCdr.cdr_id).where(BillingDocumentCdr.document_id == document_id)
                )
            ).all()
        )


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_months_invoice_has_every_fleet_cdr_once_to_the_cent_grouped_with_fees(
    db: Database,
) -> None:
    world = await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "n1", kwh="12.5")
    await charge(db, "ACME-1", utc(2026, 11, 17, 18, 15), "n2", kwh="7.25", minutes=95)
    await charge(db, "ACME-2", utc(2026, 11, 9, 12, 0), "n3", kwh="15.5", evse="AMS-01-2")
    await charge(db, "TOKEN-1", utc(2026, 11, 10, 9, 0), "app")  # not the fleet's: a per-session invoice
    await charge(db, "ACME-2", utc(2026, 12, 1, 0, 30), "dec")  # December: not on November's
    assert await rate(db) == 5
    async with db.session() as s:
        s.add(
            BillingCharge(
                account_id=world.account_id, description="Fleet plan, November", amount=Decimal("9.90"),
                currency="EUR", vat_rate=Decimal("21"), charged_on=date(2026, 11, 30), source_key="plan:2026-11",
            )
        )  # fmt: skip
    row = await issue_month(db, world.account_id, "2026-11")
    assert row is not None and row.number == "INV-2026-000002"  # 000001: TOKEN-1's per-session invoice
    assert (row.account_id, row.billing_period, row.source_key) == (
        world.account_id, "2026-11", f"monthly:{world.account_id}:2026-11",
    )  # fmt: skip
    cdrs = [await cdr_of(db, uid) for uid in ("n1", "n2", "n3")]
    assert await _invoiced_cdrs(db, row.id) == {c.id for c in cdrs}
    invoice = billing.load_invoice(row.document)
    session_lines = [ln for ln in invoice.lines if ln.cdr_id is not None]
    assert sum((ln.net for ln in session_lines), Decimal(0)) == net(cdrs)  # to the cent
    for cdr in cdrs:  # every CDR once, all its lines
        assert (
            sum((ln.net for ln in session_lines if ln.cdr_id == cdr.cdr_uid), Decimal(0))
            == cdr.total_cost_excl_vat
        )
    [fee] = [ln for ln in invoice.lines if ln.cdr_id is None]
    assert (fee.description, fee.net, fee.vat_rate) == (
        "Fleet plan, November",
        Decimal("9.90"),
        Decimal("21"),
    )
    assert invoice.totals.tax_exclusive == net(cdrs) + Decimal("9.90") == row.total_excl_vat
    groups = subtotals(row)
    assert [g.key for g in groups] == [DRIVERS["ACME-1"], DRIVERS["ACME-2"], ()]  # Ann, Bob, then the fee
    assert sum((g.net for g in groups), Decimal(0)) == invoice.totals.tax_exclusive
    assert groups[0].net == net(cdrs[:2]) and groups[1].net == cdrs[2].total_cost_excl_vat
    assert invoice.buyer.legal_name == "Acme Logistics B.V." and invoice.due_date == date(2026, 12, 15)
    validate_xml(cii_xml(invoice))  # the official Factur-X EN 16931 schema
    page = render_html(invoice)
    for group in groups[:2]:  # the printed invoice shows each driver's subtotal
        assert f'Subtotal {" / ".join(group.key)}</td>\n      <td class="n">€{group.net:,}</td>' in page
    assert page.count('class="subtotal"') == 2
    async with db.session() as s:
        [plan] = (await s.scalars(select(BillingCharge))).all()
        assert plan.document_id == row.id
    again = await issue_month(db, world.account_id, "2026-11")
    assert again is not None and again.id == row.id
    assert len(await documents(db)) == 2
    assert await issue_month(db, world.account_id, "2026-10") is None  # nothing left to bill before November
    with pytest.raises(billing.BillingError, match="not over yet"):
        await issue_month(db, world.account_id, "2026-12")
    with pytest.raises(billing.BillingError, match="YYYY-MM"):
        await issue_month(db, world.account_id, "2026-13")


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_month_is_the_accounts_local_month(db: Database) -> None:
    world = await seed_world(db, timezone="Europe/Amsterdam")
    await charge(db, "ACME-1", utc(2026, 10, 31, 22, 0), "oct-late")  # ends 23:00Z = 1 November 00:00 local
    await charge(db, "ACME-1", utc(2026, 10, 31, 21, 30), "oct")  # ends 22:30Z = 31 October 23:30 local
    await charge(db, "ACME-1", utc(2026, 11, 30, 22, 0), "dec-local")  # ends 23:00Z = 1 December 00:00 local
    assert await rate(db) == 3
    october = await issue_month(db, world.account_id, "2026-10")
    november = await issue_month(db, world.account_id, "2026-11")
    assert october is not None and november is not None
    assert await _invoiced_cdrs(db, october.id) == {(await cdr_of(db, "oct")).id}
    assert await _invoiced_cdrs(db, november.id) == {(await cdr_of(db, "oct-late")).id}
    dec_local = await cdr_of(db, "dec-local")
    async with db.session() as s:
        assert await billing.document_of(s, dec_local.id, billing.INVOICE) is None  # December's, later


@pytest.mark.clock("2027-01-02T10:00:00Z")
async def test_a_late_cdr_goes_on_the_next_months_invoice_and_a_credit_before_invoicing_is_a_line(
    db: Database,
) -> None:
    world = await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 11, 5, 8, 0), "first")
    await charge(db, "ACME-2", utc(2026, 11, 6, 8, 0), "corrected")
    assert await rate(db) == 2
    credit, fresh = await correct_cdr(
        db, (await cdr_of(db, "corrected")).cdr_uid, HOOKS
    )  # before any invoice
    assert await documents(db) == []  # a credit of a CDR on no invoice waits for the monthly invoice
    november = await issue_month(db, world.account_id, "2026-11")
    assert november is not None
    original = await cdr_of(db, "corrected")
    assert await _invoiced_cdrs(db, november.id) == {
        (await cdr_of(db, "first")).id,
        original.id,
        credit.id,
        fresh.id,
    }
    lines = billing.load_invoice(november.document).lines
    assert (
        sum((ln.net for ln in lines if ln.cdr_id == credit.cdr_uid), Decimal(0))
        == -original.total_cost_excl_vat
    )
    assert all(ln.quantity < 0 for ln in lines if ln.cdr_id == credit.cdr_uid)
    await charge(db, "ACME-1", utc(2026, 11, 20, 8, 0), "late")  # a November session priced after the invoice
    await charge(db, "ACME-1", utc(2026, 12, 10, 8, 0), "december")
    assert await rate(db) == 2
    december = await issue_month(db, world.account_id, "2026-12")
    assert december is not None
    late, dec = await cdr_of(db, "late"), await cdr_of(db, "december")
    assert await _invoiced_cdrs(db, december.id) == {late.id, dec.id}
    invoice = billing.load_invoice(december.document)
    assert invoice.supply_period.start <= late.start_date_time  # the supply period covers the late session
    assert invoice.totals.tax_exclusive == net([late, dec])


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_two_concurrent_issues_give_one_invoice(db: Database) -> None:
    world = await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "a")
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "b")
    assert await rate(db) == 2
    async with (
        db.session() as s
    ):  # a fee too: its row is locked after the counter, never before (no deadlock)
        s.add(
            BillingCharge(
                account_id=world.account_id, description="Dunning fee", amount=Decimal("5.00"), currency="EUR",
                vat_rate=Decimal("21"), charged_on=date(2026, 11, 20), source_key="fee:1",
            )
        )  # fmt: skip
    rows = await asyncio.gather(*(issue_month(db, world.account_id, "2026-11") for _ in range(4)))
    assert {r.number for r in rows if r is not None} == {"INV-2026-000001"}
    [only] = await documents(db)
    async with db.session() as s:
        assert [c.document_id for c in (await s.scalars(select(BillingCharge))).all()] == [only.id]
    assert await _invoiced_cdrs(db, only.id) == {(await cdr_of(db, "a")).id, (await cdr_of(db, "b")).id}


@pytest.mark.clock("2026-12-01T00:30:00+01:00")
async def test_the_job_issues_the_previous_local_month_once(db: Database) -> None:
    world = await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "a")
    assert await rate(db) == 1
    hub = Hub(settings=load_settings(database_url=db.url, _env_file=None), db=db, node_name="test")
    assert await run_monthly_job(hub) == 1  # 00:30 in Amsterdam on 1 December: November is over there
    assert await run_monthly_job(hub) == 0  # hourly: nothing more
    [row] = await documents(db)
    assert row.billing_period == "2026-11" and row.account_id == world.account_id


@pytest.mark.clock("2026-11-30T23:30:00Z")
async def test_the_job_waits_for_the_accounts_month_to_end(db: Database) -> None:
    world = await seed_world(db, timezone="America/New_York")  # 18:30 on 30 November there
    await charge(db, "ACME-1", utc(2026, 10, 20, 8, 0), "oct")
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "nov")
    assert await rate(db) == 2
    hub = Hub(settings=load_settings(database_url=db.url, _env_file=None), db=db, node_name="test")
    assert await run_monthly_job(hub) == 1
    [row] = await documents(db)
    assert row.billing_period == "2026-10" and await _invoiced_cdrs(db, row.id) == {
        (await cdr_of(db, "oct")).id
    }
    assert world.account_id == row.account_id


ACCOUNT = [
    "accounts", "add", "--fleet", "Acme", "--issuer", "roam", "--name", "Acme Logistics B.V.",
    "--street", "Havenweg 5", "--postal-code", "1043 AA", "--city", "Amsterdam", "--country", "NL",
]  # fmt: skip


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_accounts_add_list_and_invoices_issue_fleet_on_the_cli(db: Database, cli: Cli) -> None:
    world = await seed_world(db)  # Acme has an account with Roam already (Europe/Amsterdam)
    one_error(await cli(*ACCOUNT, ok=False), "has an account with roam in EUR already")
    await add_fleet(db, "Beta", "EUR")
    beta = [*ACCOUNT[:3], "Beta", *ACCOUNT[4:]]
    out = (
        await cli(*beta, "--timezone", "Europe/Berlin", "--language", "de", "--vat-id", "NL999999999B01")
    ).output
    assert "added account" in out and "Beta billed by roam in EUR" in out
    items = json.loads((await cli("accounts", "list", "--json")).output)
    assert [(i["owner"], i["issuer"], i["kind"], i["timezone"]) for i in items] == [
        ("Acme", "roam", "fleet", "Europe/Amsterdam"),
        ("Beta", "roam", "fleet", "Europe/Berlin"),
    ]
    one_error(await cli(*beta[:3], "Nope", *beta[4:], ok=False), "no fleet 'Nope'")
    one_error(await cli(*beta, "--timezone", "Mars/Olympus", ok=False), "IANA")
    one_error(await cli(*beta, "--currency", "EURO", ok=False), "EURO")
    one_error(await cli(*beta[:-1], "XX", ok=False), "ISO 3166-1")
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "a")
    assert await rate(db) == 1
    out = (await cli("invoices", "issue", "--fleet", "Acme", "--month", "2026-11")).output
    assert "invoice INV-2026-000001" in out and "(Acme, 2026-11)" in out
    assert (
        "INV-2026-000001" in (await cli("invoices", "issue", "--fleet", "Acme", "--month", "2026-11")).output
    )
    assert (
        "nothing to invoice for Beta"
        in (
            await cli("invoices", "issue", "--fleet", "Beta", "--month", "2026-11", "--issuer", "roam")
        ).output
    )
    one_error(await cli("invoices", "issue", "--fleet", "Acme", ok=False), "--month")
    one_error(await cli("invoices", "issue", "--fleet", "Acme", "--month", "11/2026", ok=False), "YYYY-MM")
    one_error(
        await cli("invoices", "issue", "--fleet", "Acme", "--month", "2026-12", ok=False), "not over yet"
    )
    one_error(await cli("invoices", "issue", "--fleet", "Nope", "--month", "2026-11", ok=False), "no fleet")
    one_error(await cli("invoices", "issue", "--fleet", "Acme", "--cdr", "X", ok=False), "either")
    one_error(
        await cli("invoices", "issue", "--fleet", "Acme", "--month", "2026-11", "--issuer", "x", ok=False),
        "no issuer",
    )
    [row] = await documents(db)
    assert row.account_id == world.account_id


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_a_fee_outside_vat_goes_on_an_invoice_of_its_own(db: Database) -> None:
    """EN 16931 allows no other VAT category next to O (BR-O-11/12) and no VAT ids on it (BR-O-02): a fee not
    subject to VAT is invoiced alone, its seller named by its registration id (BR-CO-26), or waits for one."""
    world = await seed_world(db)
    await without_registration_id(db, "roam")  # stored before one was required
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "a")
    assert await rate(db) == 1
    async with db.session() as s:
        s.add(
            BillingCharge(
                account_id=world.account_id, description="Late payment fee", amount=Decimal("7.50"),
                currency="EUR", vat_rate=None, charged_on=date(2026, 11, 20), source_key="dunning:1",
            )
        )  # fmt: skip
    main = await issue_month(db, world.account_id, "2026-11")  # Roam has no registration id: the fee waits
    assert main is not None and [d.number for d in await documents(db)] == [main.number]
    assert all(ln.cdr_id for ln in billing.load_invoice(main.document).lines)
    async with db.session() as s:
        [fee] = (await s.scalars(select(BillingCharge))).all()
        assert fee.document_id is None
        (await billing.get_issuer(s, "roam")).registration_id = "KvK 12345678"
    await charge(db, "ACME-1", utc(2026, 12, 3, 8, 0), "b")
    assert await rate(db) == 1
    with pinned(utc(2027, 1, 1, 10, 0)):
        december = await issue_month(db, world.account_id, "2026-12")
    assert december is not None and december.source_key == f"monthly:{world.account_id}:2026-12"
    outside = (await documents(db))[-1]
    assert (
        outside.source_key == f"monthly:{world.account_id}:2026-12:O" and outside.billing_period == "2026-12"
    )
    doc = billing.load_invoice(outside.document)
    assert [(ln.description, ln.net, ln.vat_category) for ln in doc.lines] == [
        ("Late payment fee", Decimal("7.50"), billing.VatCategory.OUTSIDE_SCOPE)
    ]
    assert (
        doc.seller.vat_id is None
        and doc.buyer.vat_id is None
        and doc.seller.registration_id == "KvK 12345678"
    )
    assert {ln.vat_category for ln in billing.load_invoice(december.document).lines} == {
        billing.VatCategory.STANDARD
    }
    for row in (december, outside):
        xml = cii_xml(billing.load_invoice(row.document))
        validate_xml(xml)
        assert schematron_failures(xml) == [], row.number
    async with db.session() as s:
        [fee] = (await s.scalars(select(BillingCharge))).all()
        assert fee.document_id == outside.id
        s.add(
            BillingCharge(
                account_id=world.account_id, description="Late payment fee", amount=Decimal("7.50"),
                currency="EUR", vat_rate=None, charged_on=date(2027, 1, 20), source_key="dunning:2",
            )
        )  # fmt: skip
    with pinned(utc(2027, 2, 1, 10, 0)):  # January: the fee alone, on the invoice outside VAT, once
        january = await issue_month(db, world.account_id, "2027-01")
        again = await issue_month(db, world.account_id, "2027-01")
    assert january is not None and january.source_key == f"monthly:{world.account_id}:2027-01:O"
    assert again is not None and again.id == january.id


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_a_cdrs_lines_outside_vat_go_on_the_months_invoice_outside_vat_and_a_correction_credits_both(
    db: Database,
) -> None:
    world = await seed_world(db)
    async with db.session() as s:
        (await billing.get_issuer(s, "roam")).registration_id = "KvK 12345678"
    await price_with_parking_outside_vat(db, "AMS-01-1")  # energy at 21 %, parking with no VAT applicable
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "parked", kwh="8", minutes=100, charge_minutes=40)
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "plain", evse="AMS-01-2")
    assert await rate(db) == 2
    parked, plain = await cdr_of(db, "parked"), await cdr_of(db, "plain")
    main = await issue_month(db, world.account_id, "2026-11")
    assert main is not None
    outside = (await documents(db))[-1]
    assert outside.source_key == f"{main.source_key}:O" and outside.id != main.id
    main_doc, outside_doc = billing.load_invoice(main.document), billing.load_invoice(outside.document)
    assert {ln.vat_category for ln in main_doc.lines} == {billing.VatCategory.STANDARD}
    assert [(ln.cdr_id, ln.vat_category) for ln in outside_doc.lines] == [
        (parked.cdr_uid, billing.VatCategory.OUTSIDE_SCOPE)
    ]
    assert outside_doc.seller.vat_id is None and outside_doc.buyer.vat_id is None
    both = [*main_doc.lines, *outside_doc.lines]
    for cdr in (parked, plain):  # the CDRs' lines to the cent, over the two invoices
        assert sum((ln.net for ln in both if ln.cdr_id == cdr.cdr_uid), Decimal(0)) == cdr.total_cost_excl_vat
    assert await _invoiced_cdrs(db, main.id) == {parked.id, plain.id}
    for row in (main, outside):
        xml = cii_xml(billing.load_invoice(row.document))
        validate_xml(xml)
        assert schematron_failures(xml) == [], row.number
    credit, _fresh = await correct_cdr(db, parked.cdr_uid, HOOKS)
    notes = [d for d in await documents(db) if d.kind == billing.CREDIT_NOTE]
    assert sorted(n.credits_document_id for n in notes) == sorted([main.id, outside.id])  # type: ignore[type-var]
    assert sum((n.total_excl_vat for n in notes), Decimal(0)) == parked.total_cost_excl_vat
    for note in notes:
        document = billing.load_credit_note(note.document)
        assert {ln.cdr_id for ln in document.lines} == {parked.cdr_uid}
        xml = cii_xml(document)
        validate_xml(xml)
        assert schematron_failures(xml) == [], note.number
    async with db.session() as s:
        assert (await billing.document_of(s, credit.id, billing.CREDIT_NOTE)) is not None
