"""Billing's database adapter (issue 14): issuers, per-session invoices from CDR rows, credit notes from credit
CDRs, idempotent issuing, immutable documents. Real database (SQLite, or PostgreSQL with
EVHUB_TEST_DATABASE_URL); the CDR rows carry the pricing engine's explanation shape
(``tariffs.core.render.explanation``) and the credit CDR is made by ``tariffs.rating.credit_for``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

import billing
from billing.core.numbering import NumberingError
from kernel.db.engine import Database
from kernel.models import (
    BillingDocument,
    BillingDocumentCdr,
    Cdr,
    ImmutableRecordError,
)
from tariffs.rating import credit_for
from tests.billing.store_kit import (
    CONSUMER,
    ISSUE,
    ISSUER,
    LINES,
    SELLER,
    T0,
    D,
    add_cdrs,
    add_credit,
    add_issuer,
    issue,
)


async def test_an_issuer_is_stored_and_read_back_as_the_core_value(db: Database) -> None:
    await add_issuer(db)
    async with db.session() as s:
        assert billing.issuer_of_row(await billing.get_issuer(s, "voltstreet")) == ISSUER
        with pytest.raises(billing.IssuerError, match="exists"):
            await billing.add_issuer(s, ISSUER)
        with pytest.raises(billing.IssuerError, match="no issuer"):
            await billing.get_issuer(s, "nobody")


async def test_a_session_invoice_has_the_cdr_lines_to_the_cent_and_is_issued_once(db: Database) -> None:
    [cdr_id] = await add_cdrs(db, 1)
    await add_issuer(db)
    first = await issue(db, cdr_id)
    again = await issue(db, cdr_id, ISSUE + timedelta(days=1))
    assert again.id == first.id and again.number == first.number == "INV-2026-000001"
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(BillingDocument)) == 1
        row = await s.get(BillingDocument, first.id)
        assert row is not None
    invoice = billing.load_invoice(row.document)
    assert [(ln.quantity, ln.unit_price, ln.net, ln.vat_rate) for ln in invoice.lines] == [
        (D(q), D(price), D(net), D(vat)) for _, q, price, vat, net, _ in LINES
    ]
    assert {ln.cdr_id for ln in invoice.lines} == {"CDR-0"}
    assert invoice.totals.tax_exclusive == row.total_excl_vat == D("7.82")
    # a consumer pays the CDR's price (9.41); the invoice's own VAT is BR-CO-17's per rate
    assert row.payable == D("9.41")
    assert invoice.seller == SELLER and invoice.buyer == CONSUMER
    assert invoice.due_date == ISSUE + timedelta(days=14) == row.due_date


async def test_an_issued_document_and_its_cdr_link_cannot_be_changed(db: Database) -> None:
    [cdr_id] = await add_cdrs(db, 1)
    await add_issuer(db)
    doc = await issue(db, cdr_id)
    with pytest.raises(ImmutableRecordError):
        async with db.session() as s:
            row = await s.get(BillingDocument, doc.id)
            assert row is not None
            row.total_excl_vat = D("0.01")
    with pytest.raises(ImmutableRecordError):
        async with db.session() as s:
            await s.delete(await s.get(BillingDocument, doc.id))
    with pytest.raises(ImmutableRecordError):
        async with db.session() as s:
            link = await s.scalar(select(BillingDocumentCdr))
            await s.delete(link)
    async with db.session() as s:
        assert await s.scalar(select(BillingDocument.total_excl_vat)) == D("7.82")


async def test_a_credit_cdr_gets_a_credit_note_of_its_invoice_once(db: Database) -> None:
    [cdr_id] = await add_cdrs(db, 1)
    await add_issuer(db)
    invoice_row = await issue(db, cdr_id)
    credit_id = await add_credit(db, cdr_id)
    async with db.session() as s:
        note_row = await billing.issue_cdr_credit_note(s, credit_cdr_id=credit_id, issue_date=ISSUE)
    async with db.session() as s:
        again = await billing.issue_cdr_credit_note(s, credit_cdr_id=credit_id, issue_date=ISSUE)
    assert again.id == note_row.id and note_row.number == "CN-2026-000001"
    assert note_row.credits_document_id == invoice_row.id and note_row.kind == billing.CREDIT_NOTE
    note = billing.load_credit_note(note_row.document)
    invoice = billing.load_invoice(invoice_row.document)
    async with db.session() as s:
        credit_uid = await s.scalar(select(Cdr.cdr_uid).where(Cdr.id == credit_id))
    assert note.invoice_number == invoice.number and note.credit_cdr == credit_uid
    assert {ln.credits_line for ln in note.lines} == {ln.line_id for ln in invoice.lines}
    assert note.totals.tax_exclusive == invoice.totals.tax_exclusive == D("7.82")
    assert note.totals.payable == invoice.totals.payable  # the closing note gives back what was due
    async with db.session() as s:
        links = (await s.execute(select(BillingDocumentCdr.cdr_id, BillingDocumentCdr.kind))).all()
    assert sorted(links) == sorted([(cdr_id, "invoice"), (cdr_id, "credit_note"), (credit_id, "credit_note")])


async def test_refusals_name_the_reason_and_write_nothing(db: Database) -> None:
    [cdr_id, other] = await add_cdrs(db, 2)
    await add_issuer(db)
    credit_id = await add_credit(db, other)
    with pytest.raises(billing.BillingError, match="on no invoice"):
        async with db.session() as s:
            await billing.issue_cdr_credit_note(s, credit_cdr_id=credit_id, issue_date=ISSUE)
    with pytest.raises(billing.BillingError, match="is a credit CDR"):
        await issue(db, credit_id)
    with pytest.raises(billing.BillingError, match="no CDR"):
        await issue(db, 999_999)
    await issue(db, cdr_id, ISSUE)
    with pytest.raises(NumberingError, match="before the last issued"):
        await issue(db, other, ISSUE - timedelta(days=1))
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(BillingDocument)) == 1
    second = await issue(db, other, ISSUE)
    assert second.number == "INV-2026-000002"  # the refused issue left no gap


async def test_the_credit_note_is_issued_in_the_credit_cdrs_own_transaction(db: Database) -> None:
    [cdr_id] = await add_cdrs(db, 1)
    await add_issuer(db)
    await issue(db, cdr_id)
    with pytest.raises(RuntimeError, match="crash"):
        async with db.session() as s:
            original = await s.get(Cdr, cdr_id)
            assert original is not None
            credit = credit_for(original, "s-0", now=T0 + timedelta(days=1))
            s.add(credit)
            await s.flush()
            note = await billing.issue_cdr_credit_note(s, credit_cdr_id=credit.id, issue_date=ISSUE)
            assert note.number == "CN-2026-000001"
            raise RuntimeError("crash before commit")
    async with db.session() as s:  # the crash took the credit CDR, its note and its number
        assert await s.scalar(select(func.count()).select_from(Cdr)) == 1
        assert await s.scalar(select(func.count()).select_from(BillingDocument)) == 1
    credit_id = await add_credit(db, cdr_id)
    async with db.session() as s:
        note = await billing.issue_cdr_credit_note(s, credit_cdr_id=credit_id, issue_date=ISSUE)
    assert note.number == "CN-2026-000001"
