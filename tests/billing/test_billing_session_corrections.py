"""Per-session invoices and their corrections (issue 14), through the real pricing with billing's CDR hook and the
receipt hook (as ``evhub serve`` runs them):

* a session whose tariff has a dimension outside the scope of VAT (category O) gets two invoices when its issuer
  has a registration id -- the taxed lines on one, the O lines on one of their own without VAT ids (EN 16931
  BR-O-11/12, BR-O-02), together at the CDR's price; the receipt e-mail carries both (both PDFs), and a
  correction credits both;
* an operator's partial credit followed by a correction: the correction's credit note credits what is left (its
  reason says so), the corrected CDR is invoiced, and the money adds up (invoices - credits = the corrected CDR);
  after a full operator credit the correction issues nothing, is settled by that note and never retried.
"""

from __future__ import annotations

import email
from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from sqlalchemy import select

import billing
from billing.cdr_hook import catch_up, credit_cdr
from billing.component import cdr_hook
from billing.crediting import credit_invoice
from billing.desk import Desk
from billing.einvoice.cii_xml import cii_xml
from billing.einvoice.pdf import embedded_xml, validate_xml
from kernel.db.engine import Database
from kernel.models import BillingDocument, Cdr, Token
from kernel.outbox import OutboxDispatcher, register_channel
from kernel.seams import Services
from kernel.timeutil import utcnow
from portal.component import ReceiptHook
from portal.receipts import CHANNEL, make_email_sender
from portal.smtp import SmtpConfig, start_smtp_sink
from tariffs.rating import correct_cdr, rate_pending
from tests.billing.documents_kit import (
    HOOKS,
    cdr_of,
    charge,
    documents,
    price_with_parking_outside_vat,
    rate,
    seed_world,
    utc,
)
from tests.billing.einvoice_kit import schematron_failures

D = Decimal
STANDARD, OUTSIDE = billing.VatCategory.STANDARD, billing.VatCategory.OUTSIDE_SCOPE


def _owed(rows: list[BillingDocument]) -> Decimal:
    """What the documents ask for together: invoices less credit notes."""
    return sum((r.payable if r.kind == billing.INVOICE else -r.payable for r in rows), D(0))


async def _send_all(db: Database, tmp_path: Path) -> list[EmailMessage]:
    sink = await start_smtp_sink(tmp_path / "mail")
    try:
        register_channel(
            CHANNEL,
            make_email_sender(
                db, lambda: SmtpConfig.from_url(sink.url), "receipts@evhub.test", lambda: Desk(db)
            ),
        )
        await OutboxDispatcher(db, channels=[CHANNEL]).drain()
        return [email.message_from_bytes(p.read_bytes(), policy=default_policy) for p in sink.messages()]
    finally:
        await sink.stop()


async def test_a_sessions_lines_outside_vat_get_an_invoice_of_their_own_both_in_the_receipt_and_credited(
    db: Database, tmp_path: Path
) -> None:
    await seed_world(db)
    async with db.session() as s:
        (await billing.get_issuer(s, "roam")).registration_id = "KvK 12345678"
        token = await s.scalar(select(Token).where(Token.uid == "TOKEN-1"))
        assert token is not None
        token.driver_email = "dora@example.test"
    await price_with_parking_outside_vat(db, "AMS-01-1")  # energy at 21 %, parking with no VAT applicable
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "parked", kwh="8", minutes=100, charge_minutes=40)
    assert await rate_pending(db, (cdr_hook, ReceiptHook(Services(billing=Desk(db))))) == 1
    cdr = await cdr_of(db, "parked")
    taxed, outside = await documents(db)
    assert (taxed.number, outside.number) == ("INV-2026-000001", "INV-2026-000002")
    assert (taxed.source_key, outside.source_key) == (f"session:{cdr.id}", f"session:{cdr.id}:O")
    taxed_doc, outside_doc = billing.load_invoice(taxed.document), billing.load_invoice(outside.document)
    assert {ln.vat_category for ln in taxed_doc.lines} == {STANDARD}
    assert {ln.vat_category for ln in outside_doc.lines} == {OUTSIDE}
    assert outside_doc.seller.vat_id is None and outside_doc.buyer.vat_id is None
    assert taxed_doc.totals.tax_exclusive + outside_doc.totals.tax_exclusive == cdr.total_cost_excl_vat
    assert taxed.payable + outside.payable == cdr.total_cost_incl_vat  # the driver pays the CDR's price
    for row in (taxed, outside):
        xml = cii_xml(billing.load_invoice(row.document))
        validate_xml(xml)
        assert schematron_failures(xml) == [], row.number
    async with db.session() as s:
        assert (await billing.document_of(s, cdr.id, billing.INVOICE)).id == taxed.id  # type: ignore[union-attr]
    # the receipt is both invoices, with both PDFs
    [mail] = await _send_all(db, tmp_path)
    assert mail["Subject"].startswith("Invoices INV-2026-000001 and INV-2026-000002: ")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        assert "INV-2026-000001" in body and "INV-2026-000002" in body
    pdfs = {
        a.get_filename(): a.get_content()
        for a in mail.iter_attachments()
        if a.get_filename().endswith(".pdf")
    }
    assert set(pdfs) == {"INV-2026-000001.pdf", "INV-2026-000002.pdf"}
    for number, pdf in pdfs.items():
        assert number.removesuffix(".pdf").encode() in embedded_xml(pdf)
    # a correction credits both invoices, each exactly its lines of the CDR, and invoices the new revision
    _credit, fresh = await correct_cdr(db, cdr.cdr_uid, HOOKS)
    rows = await documents(db)
    notes = [r for r in rows if r.kind == billing.CREDIT_NOTE]
    assert sorted(n.credits_document_id for n in notes) == [taxed.id, outside.id]  # type: ignore[type-var]
    assert sum((n.payable for n in notes), D(0)) == taxed.payable + outside.payable
    for note in notes:
        xml = cii_xml(billing.load_credit_note(note.document))
        validate_xml(xml)
        assert schematron_failures(xml) == [], note.number
    assert len([r for r in rows if r.kind == billing.INVOICE]) == 4  # the new revision's two invoices
    assert _owed(rows) == fresh.total_cost_incl_vat
    assert await catch_up(db, utcnow()) == 0


async def test_a_correction_after_a_partial_operator_credit_credits_what_is_left(db: Database) -> None:
    await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "app", kwh="9.37")
    assert await rate(db) == 1
    original = await cdr_of(db, "app")
    [invoice] = await documents(db)
    async with db.session() as s:
        goodwill = await credit_invoice(s, invoice.number, amount=D("1.00"), reason="Slow charger")
    credit, fresh = await correct_cdr(db, original.cdr_uid, HOOKS)
    rows = await documents(db)
    [note] = [r for r in rows if r.kind == billing.CREDIT_NOTE and r.id != goodwill.id]
    assert note.credits_document_id == invoice.id
    assert note.total_excl_vat == invoice.total_excl_vat - D("1.00")  # what was left, no more
    assert goodwill.payable + note.payable == invoice.payable  # the closing note: BT-114 rounding too
    reason = billing.load_credit_note(note.document).reason
    assert (
        f"Correction of CDR {original.cdr_uid}" in reason
        and "1.00 EUR" in reason
        and "credited before" in reason
    )
    async with db.session() as s:
        assert (await billing.document_of(s, credit.id, billing.CREDIT_NOTE)).id == note.id  # type: ignore[union-attr]
        second = await billing.document_of(s, fresh.id, billing.INVOICE)
        assert second is not None and second.payable == fresh.total_cost_incl_vat
    assert _owed(rows) == fresh.total_cost_incl_vat  # invoices - credits = the corrected CDR
    assert await catch_up(db, utcnow()) == 0  # nothing left to retry
    assert len(await documents(db)) == len(rows)


async def test_a_correction_after_a_full_operator_credit_is_settled_by_it_and_never_retried(
    db: Database,
) -> None:
    await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "app")
    assert await rate(db) == 1
    original = await cdr_of(db, "app")
    [invoice] = await documents(db)
    async with db.session() as s:
        everything = await credit_invoice(s, invoice.number, reason="Charger fault")
    credit, fresh = await correct_cdr(db, original.cdr_uid, HOOKS)
    rows = await documents(db)
    assert [r.kind for r in rows] == [billing.INVOICE, billing.CREDIT_NOTE, billing.INVOICE]  # no second note
    async with db.session() as s:
        settled = await billing.document_of(s, credit.id, billing.CREDIT_NOTE)
        assert settled is not None and settled.id == everything.id
        again = await s.get(Cdr, credit.id)
        assert again is not None
        assert (await credit_cdr(s, again)).id == everything.id  # idempotent, nothing new
    assert _owed(rows) == fresh.total_cost_incl_vat
    later = utcnow() + timedelta(hours=1)
    assert await catch_up(db, later) == 0 and await catch_up(db, later) == 0
    assert len(await documents(db)) == 3
