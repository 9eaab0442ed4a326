"""Operator credits (issue 14): full and partial credit notes with a reason against a per-session or a monthly
invoice, never beyond what is left (in sequence and concurrently), idempotent with a key; ``evhub invoices credit``
and ``evhub invoices pdf`` on the real CLI, bad input one error line."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

import billing
from billing.einvoice.pdf import embedded_xml
from kernel.db.engine import Database
from kernel.models import BillingDocument
from tests.billing.documents_kit import (
    charge,
    documents,
    issue_month,
    rate,
    seed_world,
    utc,
)
from tests.cli_kit import Cli, one_error

D = Decimal


async def _credit(
    db: Database, number: str, amount: str | None = None, *, key: str | None = None
) -> BillingDocument:
    async with db.session() as s:
        return await billing.credit_document(
            s, number, amount=None if amount is None else D(amount), reason="Goodwill", key=key
        )


async def _monthly(db: Database) -> BillingDocument:
    world = await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "a", kwh="12.5")
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "b", kwh="7")
    assert await rate(db) == 2
    row = await issue_month(db, world.account_id, "2026-11")
    assert row is not None
    return row


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_partial_then_full_credits_never_exceed_what_is_left(db: Database) -> None:
    invoice = await _monthly(db)
    first = await _credit(db, invoice.number, "1.00")
    assert (first.number, first.total_excl_vat, first.credits_document_id) == (
        "CN-2026-000001",
        D("1.00"),
        invoice.id,
    )
    assert billing.load_credit_note(first.document).reason == "Goodwill"
    left = invoice.total_excl_vat - D("1.00")
    with pytest.raises(billing.CreditError, match="exceeds"):
        await _credit(db, invoice.number, str(left + D("0.01")))
    with pytest.raises(billing.CreditError):
        await _credit(db, invoice.number, "-1.00")
    with pytest.raises(billing.CreditError):
        await _credit(db, invoice.number, "0.001")
    rest = await _credit(db, invoice.number)  # --full: all that is left
    assert rest.total_excl_vat == left
    notes = [d for d in await documents(db) if d.kind == billing.CREDIT_NOTE]
    assert sum((n.total_excl_vat for n in notes), D(0)) == invoice.total_excl_vat
    assert sum((n.total_vat for n in notes), D(0)) == invoice.total_vat  # the VAT back to the cent
    assert sum((n.payable for n in notes), D(0)) == invoice.payable
    with pytest.raises(billing.CreditError, match="nothing left"):
        await _credit(db, invoice.number)
    with pytest.raises(billing.BillingError, match="reason"):
        async with db.session() as s:
            await billing.credit_document(s, invoice.number, reason="  ")
    with pytest.raises(billing.BillingError, match="no invoice"):
        await _credit(db, "INV-2026-999999")
    with pytest.raises(billing.BillingError, match="no invoice"):
        await _credit(db, first.number)  # a credit note is not credited


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_concurrent_full_credits_issue_one_note_and_a_key_makes_a_retry_idempotent(
    db: Database,
) -> None:
    invoice = await _monthly(db)
    keyed = await _credit(db, invoice.number, "2.00", key="ticket-42")
    assert (await _credit(db, invoice.number, "2.00", key="ticket-42")).id == keyed.id
    results = await asyncio.gather(*(_credit(db, invoice.number) for _ in range(3)), return_exceptions=True)
    issued = [r for r in results if isinstance(r, BillingDocument)]
    refused = [r for r in results if isinstance(r, billing.CreditError)]
    assert len(issued) == 1 and len(refused) == 2, results
    assert issued[0].total_excl_vat == invoice.total_excl_vat - D("2.00")
    assert len([d for d in await documents(db) if d.kind == billing.CREDIT_NOTE]) == 2


async def test_a_session_invoice_credited_in_full_gives_the_drivers_price_back(db: Database) -> None:
    await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "app", kwh="9.37")
    assert await rate(db) == 1
    [invoice] = await documents(db)
    part = await _credit(db, invoice.number, "0.50")
    rest = await _credit(db, invoice.number)
    assert part.payable + rest.payable == invoice.payable  # the closing note carries the BT-114 rounding


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_invoices_credit_and_pdf_on_the_cli(db: Database, cli: Cli, tmp_path: Path) -> None:
    invoice = await _monthly(db)
    out = (
        await cli("invoices", "credit", invoice.number, "--reason", "Broken charger", "--amount", "1.50")
    ).output
    assert "credit note CN-2026-000001" in out and f"credits {invoice.number}" in out
    one_error(await cli("invoices", "credit", invoice.number, "--reason", "x", ok=False), "--amount")
    one_error(
        await cli("invoices", "credit", invoice.number, "--reason", "x", "--full", "--amount", "1", ok=False),
        "either",
    )
    one_error(
        await cli("invoices", "credit", invoice.number, "--reason", "x", "--amount", "lots", ok=False),
        "not a number",
    )
    one_error(
        await cli("invoices", "credit", invoice.number, "--reason", "x", "--amount", "99999", ok=False),
        "exceeds",
    )
    one_error(
        await cli("invoices", "credit", "INV-1", "--reason", "x", "--full", ok=False), "no invoice INV-1"
    )
    assert (
        "CN-2026-000002"
        in (await cli("invoices", "credit", invoice.number, "--reason", "Closed", "--full")).output
    )
    one_error(
        await cli("invoices", "credit", invoice.number, "--reason", "again", "--full", ok=False),
        "nothing left",
    )
    pdf = tmp_path / "invoice.pdf"
    assert "wrote" in (await cli("invoices", "pdf", invoice.number, "--out", str(pdf))).output
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and invoice.number.encode() in embedded_xml(data)
    note_pdf = tmp_path / "note.pdf"
    await cli("invoices", "pdf", "CN-2026-000002", "--out", str(note_pdf))
    assert b"<ram:TypeCode>381</ram:TypeCode>" in embedded_xml(note_pdf.read_bytes())
    one_error(await cli("invoices", "pdf", "NOPE", "--out", str(pdf), ok=False), "no document NOPE")
    one_error(
        await cli("invoices", "pdf", invoice.number, "--out", str(tmp_path / "no" / "x.pdf"), ok=False),
        "cannot write",
    )
