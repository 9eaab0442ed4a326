"""Billing's CDR hook (issue 14), driven through the real pricing (``rate_pending`` and ``correct_cdr`` with the hook
as ``evhub serve`` wires it): a fleet-less token's CDR gets its per-session invoice from its eMSP's issuer (else
its CPO's) in the CDR's transaction, with a driver account; a credit CDR gets the credit note of the invoice its
original is on (per-session or monthly); nothing twice, nothing without an issuer."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

import billing
from billing.cdr_hook import billing_cdr_hook
from billing.einvoice.cii_xml import cii_xml
from billing.einvoice.pdf import validate_xml
from billing.monthly_job import run_monthly_job
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingDocumentCdr, Cdr, Token
from kernel.settings import load_settings
from tariffs.rating import correct_cdr, rate_pending
from tests.billing.documents_kit import (
    HOOKS,
    ISSUER,
    cdr_of,
    charge,
    documents,
    issue_month,
    rate,
    seed_world,
    utc,
)
from tests.billing.einvoice_kit import schematron_failures
from tests.cli_kit import cli_on, one_error


async def test_an_app_drivers_cdr_gets_its_invoice_in_the_cdrs_transaction_once(db: Database) -> None:
    await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "app")
    assert await rate(db) == 1
    cdr = await cdr_of(db, "app")
    [row] = await documents(db)
    assert (row.kind, row.number, row.payable) == ("invoice", "INV-2026-000001", cdr.total_cost_incl_vat)
    invoice = billing.load_invoice(row.document)
    assert invoice.totals.tax_exclusive == cdr.total_cost_excl_vat
    assert invoice.buyer.legal_name.startswith("Card holder ") and not invoice.buyer.business
    assert (invoice.buyer.address.country, invoice.buyer.address.street) == ("NL", "")  # the place of supply
    xml = cii_xml(invoice)
    validate_xml(xml)
    assert schematron_failures(xml) == []  # a buyer address of its country alone is what EN 16931 allows
    async with db.session() as s:
        account = await s.get(BillingAccount, row.account_id)
        assert account is not None and (account.kind, account.token_id) == ("driver", cdr.token_id)
        fresh = await s.get(Cdr, cdr.id)
        assert fresh is not None
        await billing_cdr_hook(s, fresh)  # the hook again, and the CLI's path: the same invoice
        assert (await billing.invoice_cdr(s, fresh)).id == row.id
    assert len(await documents(db)) == 1


async def test_a_correction_credits_the_session_invoice_and_invoices_the_new_revision(db: Database) -> None:
    await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "app")
    assert await rate(db) == 1
    original = await cdr_of(db, "app")
    credit, fresh = await correct_cdr(db, original.cdr_uid, HOOKS)
    invoice, note, second = await documents(db)
    assert (note.kind, note.number, note.credits_document_id) == ("credit_note", "CN-2026-000001", invoice.id)
    assert note.payable == invoice.payable  # the whole session back, BT-114 rounding included
    assert (second.number, second.account_id) == ("INV-2026-000002", invoice.account_id)
    async with db.session() as s:
        assert (await billing.document_of(s, credit.id, billing.CREDIT_NOTE)).id == note.id  # type: ignore[union-attr]
        assert (await billing.document_of(s, fresh.id, billing.INVOICE)).id == second.id  # type: ignore[union-attr]
        again = await s.get(Cdr, credit.id)
        assert again is not None
        await billing_cdr_hook(s, again)
    assert len(await documents(db)) == 3


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_a_credit_of_a_cdr_on_a_monthly_invoice_credits_its_lines_there(db: Database) -> None:
    world = await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "kept")
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "corrected", kwh="14")
    assert await rate(db) == 2
    assert await documents(db) == []  # fleet CDRs wait for the monthly invoice
    november = await issue_month(db, world.account_id, "2026-11")
    assert november is not None
    original = await cdr_of(db, "corrected")
    credit, fresh = await correct_cdr(db, original.cdr_uid, HOOKS)
    _, note = await documents(db)  # the new revision waits for December's invoice
    assert note.credits_document_id == november.id
    credited = billing.load_credit_note(note.document)
    invoice_lines = {ln.line_id: ln for ln in billing.load_invoice(november.document).lines}
    assert {ln.credits_line for ln in credited.lines} == {
        k for k, ln in invoice_lines.items() if ln.cdr_id == original.cdr_uid
    }
    assert credited.totals.tax_exclusive == original.total_cost_excl_vat
    assert {ln.group for ln in credited.lines} == {("Bob", "EV-2 Kona")}
    async with db.session() as s:
        links = (
            await s.scalars(
                select(BillingDocumentCdr.cdr_id).where(BillingDocumentCdr.document_id == note.id)
            )
        ).all()
        assert set(links) == {original.id, credit.id}
        assert await billing.document_of(s, fresh.id, billing.INVOICE) is None


async def test_the_cpo_invoices_its_ad_hoc_drivers_and_nobody_invoices_a_roaming_driver(db: Database) -> None:
    world = await seed_world(db, issuer_party=False)  # Roam issues, but for no party
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "nobody")
    assert await rate(db) == 1
    assert await documents(db) == []  # neither the eMSP nor the CPO is an issuer: no invoice (debug log)
    amp = billing.Issuer(
        key="amp",
        identity=billing.Identity(
            "AmsterPower B.V.",
            billing.Address("Dam 1", "1012 JS", "Amsterdam", "NL"),
            vat_id="NL000000001B01",
            registration_id="KvK 33000001",
        ),
        currency="EUR",
        invoice_series=billing.Series("AMP"),
        credit_series=billing.Series("AMPC"),
        terms=billing.PaymentTerms(7),
    )
    async with db.session() as s:
        await billing.add_issuer(s, amp, world.parties["NL*AMP"])
    await charge(db, "TOKEN-1", utc(2026, 6, 11, 9, 0), "roaming")  # Roam's driver: Roam bills them, not AMP
    await charge(db, "ADHOC-1", utc(2026, 6, 12, 9, 0), "cpo")  # ad hoc at AmsterPower: AmsterPower sells
    assert await rate(db) == 2
    [row] = await documents(db)
    assert billing.load_invoice(row.document).buyer.legal_name == "Eve Walk-in"
    async with db.session() as s:
        issuer = await billing.get_issuer(s, "amp")
        assert row.issuer_id == issuer.id and row.number == "AMP-2026-000001"
        assert await s.scalar(select(func.count()).select_from(BillingDocument)) == 1
    assert ISSUER.key == "roam"


async def test_a_fleet_token_or_an_unpriced_cdr_gets_no_session_invoice(db: Database) -> None:
    await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 6, 10, 9, 0), "fleet")
    assert await rate(db) == 1
    cdr = await cdr_of(db, "fleet")
    async with db.session() as s:
        row = await s.get(Cdr, cdr.id)
        assert row is not None
        with pytest.raises(billing.NotBilledNow, match="monthly invoice"):
            await billing.invoice_cdr(s, row)
    assert await documents(db) == []
    assert Decimal(0) < cdr.total_cost_excl_vat


AMP_ISSUER = [
    "issuers", "add", "amp", "--name", "AmsterPower B.V.", "--street", "Dam 1", "--postal-code", "1012 JS",
    "--city", "Amsterdam", "--country", "NL", "--vat-id", "NL000000001B01", "--invoice-prefix", "AMP",
    "--credit-prefix", "AMPC", "--registration-id", "KvK 33000001",
]  # fmt: skip


async def test_an_issuer_added_for_a_party_on_the_cli_invoices_its_drivers_and_the_cli_agrees(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = cli_on(db, monkeypatch)
    await seed_world(db, issuer_party=False)
    one_error(await cli(*AMP_ISSUER, "--party", "ZZ*ZZZ", ok=False), "no party ZZ*ZZZ")
    assert "added issuer amp" in (await cli(*AMP_ISSUER, "--party", "nl*amp")).output
    await charge(db, "ADHOC-1", utc(2026, 6, 10, 9, 0), "app")
    await charge(db, "ACME-1", utc(2026, 6, 11, 9, 0), "fleet")
    assert await rate(db) == 2
    [row] = await documents(db)
    app = await cdr_of(db, "app")
    assert row.number == "AMP-2026-000001"
    assert billing.load_invoice(row.document).seller.registration_id == "KvK 33000001"
    assert (
        "invoice AMP-2026-000001" in (await cli("invoices", "issue", "--cdr", app.cdr_uid)).output
    )  # the same
    fleet = await cdr_of(db, "fleet")
    one_error(await cli("invoices", "issue", "--cdr", fleet.cdr_uid, ok=False), "monthly invoice")
    assert len(await documents(db)) == 1


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_hourly_job_issues_what_a_failed_hook_left_unissued(db: Database) -> None:
    world = await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 11, 10, 9, 0), "app")
    await charge(db, "ACME-1", utc(2026, 11, 11, 9, 0), "fleet")
    await charge(db, "ADHOC-1", utc(2026, 11, 12, 9, 0), "ad-hoc")  # AmsterPower sells it, and is no issuer
    assert await rate_pending(db, ()) == 3  # as if the hook had failed (its savepoint rolled back)
    november = await issue_month(db, world.account_id, "2026-11")
    assert november is not None
    fleet = await cdr_of(db, "fleet")
    credit, _fresh = await correct_cdr(db, fleet.cdr_uid, ())  # the credit's hook failed too
    hub = Hub(settings=load_settings(database_url=db.url, _env_file=None), db=db, node_name="test")
    assert await run_monthly_job(hub) == 2  # the app driver's invoice and the fleet CDR's credit note
    app = await cdr_of(db, "app")
    async with db.session() as s:
        invoice = await billing.document_of(s, app.id, billing.INVOICE)
        note = await billing.document_of(s, credit.id, billing.CREDIT_NOTE)
        assert invoice is not None and invoice.kind == billing.INVOICE and invoice.account_id is not None
        assert note is not None and note.credits_document_id == november.id
    assert await run_monthly_job(hub) == 0


async def test_a_renamed_driver_is_the_buyer_of_the_next_session_invoice(db: Database) -> None:
    """The driver account is made with the buyer of the first invoice; a session after the driver's name changed
    is invoiced to the new name (the CDR's recorded driver, at issue time), the account follows it, and the
    invoice issued before keeps the name it was issued to (immutable)."""
    await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "app-1")
    assert await rate(db) == 1
    async with db.session() as s:
        token = await s.scalar(select(Token).where(Token.uid == "TOKEN-1"))
        assert token is not None
        token.driver_name = "Dana Visser"
    await charge(db, "TOKEN-1", utc(2026, 6, 11, 9, 0), "app-2")
    assert await rate(db) == 1
    first, second = await documents(db)
    assert first.account_id == second.account_id is not None
    before, after = billing.load_invoice(first.document), billing.load_invoice(second.document)
    assert before.buyer.legal_name.startswith("Card holder ") and after.buyer.legal_name == "Dana Visser"
    assert (await cdr_of(db, "app-2")).driver_name == "Dana Visser"
    async with db.session() as s:
        account = await s.get(BillingAccount, second.account_id)
        assert account is not None and account.buyer["legal_name"] == "Dana Visser"
        assert (await s.get(BillingDocument, first.id)).buyer["legal_name"] == before.buyer.legal_name  # type: ignore[union-attr]
