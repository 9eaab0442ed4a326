"""Category O ("not subject to VAT") for an issuer without a registration id (issue 14; EN 16931 BR-O-11/BR-O-12:
a document with an O line has only O lines; BR-O-02, BR-CO-26: such a document names the seller by its
registration id). An issuer stored before one was required never issues a document mixing O with other
categories: the CDRs with an O line and the O fees are held, with the reason in the log (a warning) and in the
reconciliation report (``cdr_held`` / ``fee_held``, CLI and API), while the taxed ones are invoiced; once
``evhub issuers set --registration-id`` or ``PATCH /api/billing/issuers/{key}`` gives it one, the next run bills
them split (taxed lines on one invoice, O lines on their own), every CDR on exactly one invoice, once. Per
session (the CDR hook, the hourly catch-up, however old the CDR), monthly (per account) and through the hourly
job's bulk path. ``add_issuer``, the CLI and the API refuse a new issuer without a registration id. Real pricing,
SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from dataclasses import replace
from datetime import date
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

import billing
from billing import api_documents, api_reports
from billing.cdr_hook import catch_up
from billing.einvoice.cii_xml import cii_xml
from billing.einvoice.pdf import validate_xml
from billing.monthly_job import run_monthly_job
from billing.store import reports
from evhub.app import create_app
from kernel.apiauth import create_key
from kernel.clock import pinned
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingCharge, BillingDocument, BillingDocumentCdr, BillingIssuer, Cdr, Party
from kernel.settings import load_settings
from kernel.timeutil import utcnow
from tests.billing.documents_kit import (
    ISSUER,
    cdr_of,
    charge,
    documents,
    issue_month,
    price_with_parking_outside_vat,
    rate,
    seed_world,
    utc,
)
from tests.billing.einvoice_kit import schematron_failures
from tests.billing.store_kit import without_registration_id
from tests.cli_kit import Cli, one_error

D = Decimal
STANDARD, OUTSIDE = billing.VatCategory.STANDARD, billing.VatCategory.OUTSIDE_SCOPE
REGISTRATION = "KvK 12345678"


async def _links(db: Database) -> Counter[int]:
    """How many invoices each CDR is linked to."""
    async with db.session() as s:
        rows = await s.scalars(
            select(BillingDocumentCdr.cdr_id).where(BillingDocumentCdr.kind == billing.INVOICE)
        )
        return Counter(rows.all())


async def _linked_to(db: Database, cdr_id: int) -> int | None:
    async with db.session() as s:
        return await s.scalar(
            select(BillingDocumentCdr.document_id).where(
                BillingDocumentCdr.cdr_id == cdr_id, BillingDocumentCdr.kind == billing.INVOICE
            )
        )


async def _exceptions(db: Database, period: str, today: date) -> list[tuple[str, str, str]]:
    async with db.session() as s:
        rec = await reports.reconciliation_report(s, period, today)
    return [(e.kind, e.ref, e.detail) for e in rec.exceptions]


async def _unbilled(db: Database, period: str, today: date) -> list[tuple[str, str, str]]:
    """The report's exceptions for what is on no document: held, or not invoiced."""
    unbilled = {"cdr_held", "fee_held", "cdr_not_invoiced"}
    return [e for e in await _exceptions(db, period, today) if e[0] in unbilled]


def _categories(row: BillingDocument) -> set[billing.VatCategory]:
    return {ln.vat_category for ln in billing.load_invoice(row.document).lines}


def _schematron_clean(row: BillingDocument) -> None:
    xml = cii_xml(billing.load_invoice(row.document))
    validate_xml(xml)
    assert schematron_failures(xml) == [], row.number


def _held_warnings(caplog: pytest.LogCaptureFixture, uid: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and uid in r.getMessage() and "registration id" in r.getMessage()
    ]


@pytest.mark.clock("2026-06-10T12:00:00Z")
async def test_a_session_outside_vat_is_held_then_invoiced_split_once_the_registration_id_is_set(
    db: Database, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    await seed_world(db)
    await without_registration_id(db, "roam")  # stored before one was required
    await price_with_parking_outside_vat(db, "AMS-01-1")  # energy at 21 %, parking with no VAT applicable
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "parked", kwh="8", minutes=100, charge_minutes=40)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 10, 0), "plain", evse="AMS-01-2")  # taxed only
    with caplog.at_level(logging.WARNING):
        assert await rate(db) == 2  # priced with billing's CDR hook
    parked, plain = await cdr_of(db, "parked"), await cdr_of(db, "plain")
    [invoice] = await documents(db)  # the taxed session is invoiced as ever; the other is held
    assert _categories(invoice) == {STANDARD} and invoice.source_key is None
    assert await _links(db) == Counter({plain.id: 1})
    [warning] = _held_warnings(caplog, parked.cdr_uid)
    assert "held" in warning and "BR-O-11" in warning and "issuer roam" in warning
    # queryable: the reconciliation report names it, with the reason, as soon as it is held (June is still open)
    [(kind, ref, detail)] = await _exceptions(db, "2026-06", date(2026, 6, 10))
    assert (kind, ref) == ("cdr_held", parked.cdr_uid)
    assert "BR-O-02" in detail and "evhub issuers set roam --registration-id" in detail
    # issuing it by hand is refused with that reason, and the hourly catch-up leaves it held
    one_error(
        await cli("invoices", "issue", "--cdr", parked.cdr_uid, ok=False), "held: outside the scope of VAT"
    )
    assert await catch_up(db, utcnow()) == 0
    assert len(await documents(db)) == 1
    with pinned(utc(2026, 6, 20, 12, 0)):  # ten days on: past the catch-up's window for new CDRs
        out = (await cli("issuers", "set", "roam", "--registration-id", f"  {REGISTRATION} ")).output
        assert f"issuer roam: registration id {REGISTRATION}" in out
        assert await catch_up(db, utcnow()) == 1
        assert await catch_up(db, utcnow()) == 0  # once
    taxed, outside = (await documents(db))[1:]
    assert (taxed.source_key, outside.source_key) == (f"session:{parked.id}", f"session:{parked.id}:O")
    assert _categories(taxed) == {STANDARD} and _categories(outside) == {OUTSIDE}
    outside_doc = billing.load_invoice(outside.document)
    assert outside_doc.seller.registration_id == REGISTRATION
    assert outside_doc.seller.vat_id is None and outside_doc.buyer.vat_id is None
    assert taxed.total_excl_vat + outside.total_excl_vat == parked.total_cost_excl_vat
    assert await _links(db) == Counter({plain.id: 1, parked.id: 1})  # every CDR on exactly one invoice
    assert await _linked_to(db, parked.id) == taxed.id
    for row in (taxed, outside):
        _schematron_clean(row)
    assert await _unbilled(db, "2026-06", date(2026, 6, 20)) == []
    assert len(await documents(db)) == 3


async def _parked_month(db: Database) -> tuple[int, Cdr, Cdr]:
    """Acme's November: ``parked`` (energy at 21 %, parking outside VAT) and ``plain`` (taxed only) with an
    issuer stored without a registration id; the account id and the two CDRs."""
    world = await seed_world(db)
    await without_registration_id(db, "roam")
    await price_with_parking_outside_vat(db, "AMS-01-1")
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "parked", kwh="8", minutes=100, charge_minutes=40)
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "plain", evse="AMS-01-2")
    assert await rate(db) == 2
    return world.account_id, await cdr_of(db, "parked"), await cdr_of(db, "plain")


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_monthly_invoice_holds_the_o_cdrs_and_fees_then_bills_them_apart_once_set(
    db: Database, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    account_id, parked, plain = await _parked_month(db)
    async with db.session() as s:
        s.add_all(
            [
                BillingCharge(
                    account_id=account_id, description="Late payment fee", amount=D("7.50"), currency="EUR",
                    vat_rate=None, charged_on=date(2026, 11, 20), source_key="dunning:1",
                ),
                BillingCharge(
                    account_id=account_id, description="Fleet plan, November", amount=D("9.90"), currency="EUR",
                    vat_rate=D("21"), charged_on=date(2026, 11, 30), source_key="plan:2026-11",
                ),
            ]
        )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="billing.store.monthly"):
        main = await issue_month(db, account_id, "2026-11")
    assert main is not None and [d.id for d in await documents(db)] == [main.id]  # no invoice outside VAT
    assert _categories(main) == {STANDARD}  # never O next to another category
    assert {ln.cdr_id for ln in billing.load_invoice(main.document).lines} == {plain.cdr_uid, None}
    assert await _links(db) == Counter({plain.id: 1})
    async with db.session() as s:
        charges = (await s.scalars(select(BillingCharge))).all()
    fees = {c.source_key: c.document_id for c in charges}
    assert fees == {"dunning:1": None, "plan:2026-11": main.id}  # the taxed fee is invoiced, the O one waits
    [late_fee] = [f"fee:{c.id}" for c in charges if c.source_key == "dunning:1"]
    assert _held_warnings(caplog, parked.cdr_uid)
    assert any("fee(s) outside the scope of VAT wait" in r.getMessage() for r in caplog.records)
    held = await _exceptions(db, "2026-11", date(2026, 12, 1))
    assert [(kind, ref) for kind, ref, _ in held] == [("cdr_held", parked.cdr_uid), ("fee_held", late_fee)]
    assert all("registration id" in detail and "BR-O-11" in detail for _, _, detail in held)
    assert (await issue_month(db, account_id, "2026-11")).id == main.id  # type: ignore[union-attr]  # asked again: the same, nothing more
    # the reason in the CLI's reconciliation report too
    report = await cli("billing", "report", "reconciliation", "--period", "2026-11", "--csv", "-")
    rows = [(r["record"], r["ref"]) for r in csv.DictReader(io.StringIO(report.stdout))]
    assert ("cdr_held", parked.cdr_uid) in rows and ("fee_held", late_fee) in rows
    await cli("issuers", "set", "roam", "--registration-id", REGISTRATION)
    await charge(db, "ACME-1", utc(2026, 12, 3, 8, 0), "december", evse="AMS-01-2")
    assert await rate(db) == 1
    december_cdr = await cdr_of(db, "december")
    with pinned(utc(2027, 1, 1, 10, 0)):  # the next run: December's invoice takes what November held, split
        december = await issue_month(db, account_id, "2026-12")
        again = await issue_month(db, account_id, "2026-12")
    assert december is not None and again is not None and again.id == december.id
    main_dec, outside = (await documents(db))[1:]
    assert main_dec.id == december.id and outside.source_key == f"monthly:{account_id}:2026-12:O"
    assert _categories(main_dec) == {STANDARD} and _categories(outside) == {OUTSIDE}
    outside_doc = billing.load_invoice(outside.document)
    assert [(ln.description, ln.net) for ln in outside_doc.lines if ln.cdr_id is None] == [
        ("Late payment fee", D("7.50"))
    ]
    assert {ln.cdr_id for ln in outside_doc.lines if ln.cdr_id} == {parked.cdr_uid}
    assert outside_doc.seller.registration_id == REGISTRATION and outside_doc.seller.vat_id is None
    lines = [*billing.load_invoice(main_dec.document).lines, *outside_doc.lines]
    assert sum((ln.net for ln in lines if ln.cdr_id == parked.cdr_uid), D(0)) == parked.total_cost_excl_vat
    # every CDR on exactly one invoice (the split one on the main invoice), the fee on the one outside VAT
    assert await _links(db) == Counter({plain.id: 1, parked.id: 1, december_cdr.id: 1})
    assert await _linked_to(db, parked.id) == main_dec.id
    async with db.session() as s:
        fees = {c.source_key: c.document_id for c in (await s.scalars(select(BillingCharge))).all()}
    assert fees == {"dunning:1": outside.id, "plan:2026-11": main.id}
    for row in (main_dec, outside):
        _schematron_clean(row)
    assert await _unbilled(db, "2026-11", date(2027, 1, 1)) == []


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_hourly_jobs_bulk_path_holds_too_and_bills_them_after_the_api_sets_the_id(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    account_id, parked, plain = await _parked_month(db)
    async with db.session() as s:
        hub_key = await create_key(s, "ops", None)
        amp = await s.scalar(select(Party).where(Party.country_code == "NL", Party.party_id == "AMP"))
        cpo_key = await create_key(s, "amp", amp)
    hub = Hub(
        settings=load_settings(database_url=db.url, api_auth=True, _env_file=None), db=db, node_name="t"
    )
    hub.app = create_app(hub)
    hub.app.include_router(api_documents.router, prefix="/api")
    hub.app.include_router(api_reports.router, prefix="/api")
    with caplog.at_level(logging.WARNING):
        assert await run_monthly_job(hub) == 1
        assert await run_monthly_job(hub) == 0  # hourly: nothing more, the CDR still held
    [main] = await documents(db)
    assert main.source_key == f"monthly:{account_id}:2026-11" and _categories(main) == {STANDARD}
    assert await _links(db) == Counter({plain.id: 1})
    assert len(_held_warnings(caplog, parked.cdr_uid)) == 1  # (the second run found November issued)
    auth = {"Authorization": f"Bearer {hub_key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        rec = (await http.get("/api/billing/reports/reconciliation?period=2026-11", headers=auth)).json()
        [held] = rec["exceptions"]
        assert (held["kind"], held["ref"], held["issuer"]) == ("cdr_held", parked.cdr_uid, "roam")
        assert D(held["amount"]) == parked.total_cost_excl_vat and "registration id" in held["detail"]
        listed = (await http.get("/api/billing/issuers", headers=auth)).json()
        assert [(i["key"], i["registration_id"]) for i in listed] == [("roam", None)]
        for who, path, body, status, text in [
            (cpo_key, "roam", {"registration_id": REGISTRATION}, 403, ""),
            (hub_key, "nobody", {"registration_id": REGISTRATION}, 404, "no issuer 'nobody'"),
            (hub_key, "roam", {"registration_id": ""}, 422, ""),
            (hub_key, "roam", {"registration_id": "   "}, 422, "cannot be empty"),
            (hub_key, "roam", {}, 422, ""),
        ]:
            answer = await http.patch(
                f"/api/billing/issuers/{path}", json=body, headers={"Authorization": f"Bearer {who}"}
            )
            assert answer.status_code == status, answer.text
            assert text in str(answer.json()["detail"])
        async with db.session() as s:
            assert (await billing.get_issuer(s, "roam")).registration_id is None  # refused: unchanged
        patched = await http.patch(
            "/api/billing/issuers/roam", json={"registration_id": REGISTRATION}, headers=auth
        )
        assert patched.status_code == 200 and patched.json()["registration_id"] == REGISTRATION
    await charge(db, "ACME-1", utc(2026, 12, 3, 8, 0), "december", evse="AMS-01-2")
    assert await rate(db) == 1
    with pinned(utc(2027, 1, 1, 10, 0)):
        assert await run_monthly_job(hub) == 1  # the account with O lines goes per account: split
        assert await run_monthly_job(hub) == 0
    main_dec, outside = (await documents(db))[1:]
    assert _categories(main_dec) == {STANDARD} and _categories(outside) == {OUTSIDE}
    assert outside.source_key == f"monthly:{account_id}:2026-12:O"
    assert {ln.cdr_id for ln in billing.load_invoice(outside.document).lines} == {parked.cdr_uid}
    december = await cdr_of(db, "december")
    assert await _links(db) == Counter({plain.id: 1, parked.id: 1, december.id: 1})


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_a_month_with_only_held_cdrs_issues_nothing_until_the_id_is_set(db: Database) -> None:
    world = await seed_world(db)
    await without_registration_id(db, "roam")
    await price_with_parking_outside_vat(db, "AMS-01-1")
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "parked", kwh="8", minutes=100, charge_minutes=40)
    assert await rate(db) == 1
    parked = await cdr_of(db, "parked")
    assert await issue_month(db, world.account_id, "2026-11") is None  # held whole: nothing to issue
    assert await documents(db) == []
    async with db.session() as s:
        await billing.set_issuer_registration_id(s, "roam", REGISTRATION)
    main = await issue_month(db, world.account_id, "2026-11")  # November itself, now split
    assert main is not None and main.source_key == f"monthly:{world.account_id}:2026-11"
    _main, outside = await documents(db)
    assert _categories(main) == {STANDARD} and _categories(outside) == {OUTSIDE}
    assert await _links(db) == Counter({parked.id: 1})
    assert (await issue_month(db, world.account_id, "2026-11")).id == main.id  # type: ignore[union-attr]


async def test_a_new_issuer_needs_a_registration_id_in_the_store_the_cli_and_the_api(
    db: Database, cli: Cli
) -> None:
    await seed_world(db)
    async with db.session() as s:
        for missing in (None, "", "   "):
            unregistered = replace(
                ISSUER, key="new", identity=replace(ISSUER.identity, registration_id=missing)
            )
            with pytest.raises(billing.IssuerError, match="legal registration id"):
                await billing.add_issuer(s, unregistered)
        assert await s.scalar(select(BillingIssuer).where(BillingIssuer.key == "new")) is None
        with pytest.raises(billing.IssuerError, match="no issuer 'nobody'"):
            await billing.set_issuer_registration_id(s, "nobody", REGISTRATION)
        with pytest.raises(billing.IssuerError, match="at most 64"):
            await billing.set_issuer_registration_id(s, "roam", "K" * 65)
    new = [
        "issuers", "add", "new", "--name", "New B.V.", "--street", "Dam 2", "--postal-code", "1012 JS",
        "--city", "Amsterdam", "--country", "NL", "--vat-id", "NL000000002B01",
    ]  # fmt: skip
    one_error(await cli(*new, ok=False), "legal registration id")
    one_error(await cli(*new, "--registration-id", " ", ok=False), "legal registration id")
    one_error(await cli("issuers", "set", "nobody", "--registration-id", "X", ok=False), "no issuer 'nobody'")
    one_error(await cli("issuers", "set", "roam", "--registration-id", " ", ok=False), "cannot be empty")
    assert "added issuer new" in (await cli(*new, "--registration-id", "KvK 55000001")).output
    async with db.session() as s:
        assert (await billing.get_issuer(s, "new")).registration_id == "KvK 55000001"
        hub_key = await create_key(s, "ops", None)
    hub = Hub(
        settings=load_settings(database_url=db.url, api_auth=True, _env_file=None), db=db, node_name="t"
    )
    hub.app = create_app(hub)
    hub.app.include_router(api_documents.router, prefix="/api")
    body = {
        "key": "api", "legal_name": "Api B.V.", "street": "Dam 3", "postal_code": "1012 JS", "city": "Amsterdam",
        "country": "NL", "vat_id": "NL000000003B01",
    }  # fmt: skip
    auth = {"Authorization": f"Bearer {hub_key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        for extra in ({}, {"registration_id": None}, {"registration_id": "  "}):
            refused = await http.post("/api/billing/issuers", json={**body, **extra}, headers=auth)
            assert refused.status_code == 422 and "legal registration id" in refused.json()["detail"], (
                refused.text
            )
        added = await http.post(
            "/api/billing/issuers", json={**body, "registration_id": "KvK 55000002"}, headers=auth
        )
        assert added.status_code == 201 and added.json()["registration_id"] == "KvK 55000002"
    async with db.session() as s:
        assert [r.key for r in await billing.list_issuers(s)] == ["api", "new", "roam"]
