"""A settlement period whose balance between two parties is below zero (issue 14): a November CDR corrected in
December to a lower price makes December's lines add up to less than zero for every pair. Each is then the
same issuer's credit note (381; the CPO's self-billed credit note, 261, for the site host), crediting the
November document the corrected CDR was billed on, equal to the December statements to the cent."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from pypdf import PdfReader
from sqlalchemy import select

import billing
from billing.einvoice import cii_xml, render_html, render_pdf, validate_xml
from billing.settlement_documents import run_settlement_documents_job
from billing.store.codec import load_credit_note
from kernel.db.engine import Database
from kernel.models import BillingDocumentCdr, Cdr, ChargingSession, MeterValue, SettlementStatement
from settlement.job import run_period
from tariffs.rating import correct_cdr, rate_pending
from tests.billing.b2b_kit import (
    CLOCK,
    add_issuers,
    b2b_hub,
    documents_by_number,
    settled_period,
    site_host_account,
)
from tests.billing.einvoice_kit import schematron_failures
from tests.world.sessions import seed_ended_session

pytestmark = pytest.mark.clock(CLOCK)

D = Decimal


async def _lower(db: Database, cdr_uid: str) -> None:
    """The session of ``cdr_uid`` charged a quarter of what it said (the operator's correction of its data)."""
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.cdr_uid == cdr_uid))
        assert cdr is not None
        session = await s.get(ChargingSession, cdr.session_id)
        assert session is not None and session.meter_stop_wh is not None
        session.energy_wh = session.energy_wh / 4
        session.meter_stop_wh = session.meter_start_wh + session.energy_wh
        for value in await s.scalars(select(MeterValue).where(MeterValue.session_id == session.id)):
            value.value = session.meter_start_wh + (value.value - session.meter_start_wh) / 4


async def test_a_period_below_zero_gives_credit_notes_equal_to_the_statements(
    db: Database, tmp_path: Path
) -> None:
    await settled_period(db, tmp_path / "nov", sessions=2)
    await add_issuers(db)
    await site_host_account(db)
    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    november = await documents_by_number(db)
    async with db.session() as s:
        first = await s.scalar(select(Cdr.cdr_uid).where(Cdr.is_credit.is_(False)).order_by(Cdr.id).limit(1))
    assert first is not None
    await _lower(db, first)
    credit, fresh = await correct_cdr(db, first, ())
    assert fresh.total_cost_excl_vat < -credit.total_cost_excl_vat
    december = await run_period(db, "2026-12", out_dir=tmp_path / "dec", close=True)
    assert december.result.summary.adjustments == 2 and december.run_id is not None

    outcomes = await billing.issue_settlement_documents(db, december.run_id)
    assert [(o.number, o.reason) for o in outcomes] == [
        ("AMPC-2026-000001", None),
        ("HUBC-2026-000001", None),
        ("SBC-2026-000001", None),
    ]
    assert all(o.credit_note and o.net < 0 for o in outcomes)
    assert "issued HUBC-2026-000001: hub fee credit note NL*HUB -> NL*AMP -" in outcomes[1].describe()
    docs = {n: d for n, d in (await documents_by_number(db)).items() if n not in november}
    async with db.session() as s:
        statements = {
            st.party: st
            for st in (
                await s.scalars(
                    select(SettlementStatement).where(SettlementStatement.run_id == december.run_id)
                )
            )
        }
        links = {
            (d, c)
            for d, c in (
                await s.execute(
                    select(BillingDocumentCdr.document_id, BillingDocumentCdr.cdr_id).where(
                        BillingDocumentCdr.document_id.in_([d.id for d in docs.values()])
                    )
                )
            ).all()
        }
    expected = {
        # number: (the November document it credits, the December statement it equals, its type)
        "AMPC-2026-000001": ("AMP-2026-000001", statements["NL*EMS"].net, "381"),
        "HUBC-2026-000001": ("HUB-2026-000001", -statements["NL*HUB"].net, "381"),
        "SBC-2026-000001": ("SB-2026-000001", -statements["NL*SIT"].net, "261"),
    }
    for number, (credited, statement_net, type_code) in expected.items():
        row = docs[number]
        note = load_credit_note(row.document)
        assert row.kind == "credit_note" and row.credits_document_id == november[credited].id
        assert (note.invoice_number, note.invoice_date) == (credited, november[credited].issue_date)
        # The money equals the December statement to the cent: what the seller's statement says it owes back.
        assert statement_net > 0 and note.totals.tax_exclusive == row.total_excl_vat == statement_net
        assert note.self_billed == (type_code == "261")
        xml = cii_xml(note)
        validate_xml(xml)
        assert schematron_failures(xml) == []
        assert etree.fromstring(xml).findtext(".//{*}ExchangedDocument/{*}TypeCode") == type_code
        # Both December CDRs (the credit and the new revision) are on it, once.
        assert {c for d, c in links if d == row.id} == {credit.id, fresh.id}
    assert docs["SBC-2026-000001"].account_id is None and docs["AMPC-2026-000001"].account_id is not None

    # Again: nothing new.
    again = await billing.issue_settlement_documents(db, december.run_id)
    assert [o.existing for o in again] == [True, True, True]
    assert set(await documents_by_number(db)) == set(november) | set(docs)


async def test_a_credit_note_without_an_invoice_to_correct_is_not_issued(
    db: Database, tmp_path: Path
) -> None:
    """November's documents were never issued (no identities then): December's credit notes have no invoice
    to name (BT-25), so they are reported with the reason, never issued as invoices below zero."""
    await settled_period(db, tmp_path / "nov", sessions=2)
    async with db.session() as s:
        first = await s.scalar(select(Cdr.cdr_uid).where(Cdr.is_credit.is_(False)).order_by(Cdr.id).limit(1))
    assert first is not None
    await _lower(db, first)
    await correct_cdr(db, first, ())
    december = await run_period(db, "2026-12", out_dir=tmp_path / "dec", close=True)
    assert december.run_id is not None
    await add_issuers(db)
    await site_host_account(db)
    outcomes = await billing.issue_settlement_documents(db, december.run_id)
    assert all(o.number is None and o.reason and "BT-25" in o.reason for o in outcomes)
    assert await documents_by_number(db) == {}


async def test_a_credit_note_names_every_invoice_it_corrects(db: Database, tmp_path: Path) -> None:
    """A November CDR and a December CDR, each billed on its period's invoices, both corrected to a quarter in
    January: January's credit notes correct two invoices each, and name both (BG-3 0..n; Factur-X EN 16931's
    CII allows several InvoiceReferencedDocument), the latest first (it carries the credit in the balances);
    the self-billed credit note's PDF is titled as its HTML is."""
    await settled_period(db, tmp_path / "nov", sessions=1)
    await add_issuers(db)
    await site_host_account(db)
    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 12, 4, 9, tzinfo=UTC), 50, "9.5", uid="dec-0")
    await rate_pending(db, ())
    december = await run_period(db, "2026-12", out_dir=tmp_path / "dec", close=True)
    assert december.run_id is not None
    assert [o.number for o in await billing.issue_settlement_documents(db, december.run_id)] == [
        "AMP-2026-000002",
        "HUB-2026-000002",
        "SB-2026-000002",
    ]
    before = await documents_by_number(db)
    async with db.session() as s:
        uids = list(await s.scalars(select(Cdr.cdr_uid).where(Cdr.is_credit.is_(False)).order_by(Cdr.id)))
    assert len(uids) == 2
    for uid in uids:
        await _lower(db, uid)
        await correct_cdr(db, uid, ())
    january = await run_period(db, "2027-01", out_dir=tmp_path / "jan", close=True)
    assert january.run_id is not None
    outcomes = await billing.issue_settlement_documents(db, january.run_id)
    assert [(o.number, o.reason) for o in outcomes] == [
        ("AMPC-2026-000001", None),
        ("HUBC-2026-000001", None),
        ("SBC-2026-000001", None),
    ]
    docs = await documents_by_number(db)
    for number, prefix in (
        ("AMPC-2026-000001", "AMP"),
        ("HUBC-2026-000001", "HUB"),
        ("SBC-2026-000001", "SB"),
    ):
        note = load_credit_note(docs[number].document)
        latest, earlier = f"{prefix}-2026-000002", f"{prefix}-2026-000001"
        assert docs[number].credits_document_id == before[latest].id
        assert (note.invoice_number, [r.number for r in note.also_credits]) == (latest, [earlier])
        xml = cii_xml(note)
        validate_xml(xml)
        assert schematron_failures(xml) == []
        refs = etree.fromstring(xml).findall(
            ".//{*}ApplicableHeaderTradeSettlement/{*}InvoiceReferencedDocument"
        )
        assert [r.findtext("{*}IssuerAssignedID") for r in refs] == [latest, earlier]
        assert f"{latest} (" in render_html(note) and f", {earlier} (" in render_html(note)
    pdf = PdfReader(io.BytesIO(render_pdf(load_credit_note(docs["SBC-2026-000001"].document))))
    assert (
        pdf.metadata is not None
        and pdf.metadata.title == "Station Parking B.V.: Self-billed credit note SBC-2026-000001"
    )
