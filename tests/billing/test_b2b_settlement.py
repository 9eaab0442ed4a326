"""B2B documents from a closed settlement period (issue 14): settlement's own job settles and closes November
(roaming CPO -> eMSP, the hub's fee, a site host's share); billing's job and CLI turn the closed run into the
CPO's invoice to the eMSP, the hub's invoice to the CPO and the CPO's self-billed invoice (389) on the site
host's behalf, equal to the statements to the cent, gap-free, once, each a valid EN 16931 e-invoice."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from pypdf import PdfReader
from sqlalchemy import func, select
from typer.testing import Result

import billing
from billing.core.en16931 import category_tax
from billing.einvoice import cii_xml, embedded_xml, validate_xml
from billing.settlement_documents import run_settlement_documents_job
from kernel.db.engine import Database
from kernel.models import BillingDocument, BillingDocumentCdr, Cdr, SettlementStatement
from settlement.job import JobResult, run_period
from tariffs.rating import correct_cdr, rate_pending
from tests.billing.b2b_kit import (
    CLOCK,
    PERIOD,
    SITE_HOST,
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
CENT = D("0.01")
Cli = Callable[..., Awaitable[Result]]


def _minor_sum(job: JobResult, kind: str, column: str) -> Decimal:
    lines = job.result.lines
    return D(int(lines.loc[lines["kind"] == kind, column].sum())) * CENT


def _per_cdr(job: JobResult, kind: str, sign: int) -> dict[str, Decimal]:
    lines = job.result.lines
    chosen = lines[lines["kind"] == kind]
    return {
        str(c): sign * D(int(n)) * CENT for c, n in zip(chosen["cdr_id"], chosen["net_minor"], strict=True)
    }


def _check_document(row: BillingDocument, job: JobResult, kind: str, sign: int) -> None:
    invoice = billing.load_invoice(row.document)
    # Lines equal the settlement's lines, CDR by CDR, to the cent; the net equals the statement's.
    got: dict[str, Decimal] = {}
    for line in invoice.lines:
        assert line.cdr_id is not None
        got[line.cdr_id] = got.get(line.cdr_id, D(0)) + line.net
    assert got == _per_cdr(job, kind, sign)
    assert invoice.totals.tax_exclusive == sign * _minor_sum(job, kind, "net_minor") == row.total_excl_vat
    # VAT per rate: BR-CO-17 over the lines of that rate; the settlement's per-CDR VAT differs only by rounding.
    for vat in invoice.breakdown:
        taxable = sum((ln.net for ln in invoice.lines if ln.vat_rate == vat.rate), D(0))
        assert vat.taxable == taxable and vat.tax == category_tax(taxable, vat.rate, "EUR")
    settlement_vat = sign * _minor_sum(job, kind, "vat_minor")
    assert abs(settlement_vat - invoice.totals.tax) <= CENT * len(got)
    # A valid EN 16931 e-invoice: the Factur-X XSD and the official Schematron.
    xml = cii_xml(invoice)
    validate_xml(xml)
    assert schematron_failures(xml) == []
    type_code = etree.fromstring(xml).findtext(".//{*}ExchangedDocument/{*}TypeCode")
    assert type_code == ("389" if kind == "site_host_share" else "380")


async def test_closed_period_gives_the_parties_documents_once(db: Database, tmp_path: Path) -> None:
    job = await settled_period(db, tmp_path)
    await add_issuers(db)
    await site_host_account(db)

    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    docs = await documents_by_number(db)
    assert set(docs) == {"AMP-2026-000001", "HUB-2026-000001", "SB-2026-000001"}
    roaming, fee, self_billed = docs["AMP-2026-000001"], docs["HUB-2026-000001"], docs["SB-2026-000001"]
    assert (roaming.kind, fee.kind, self_billed.kind) == ("invoice", "invoice", "self_billed")
    assert roaming.buyer["legal_name"] == "Roam B.V." and fee.buyer["legal_name"] == "AmsterPower B.V."
    sb = billing.load_invoice(self_billed.document)
    assert sb.self_billed and sb.seller == SITE_HOST and sb.buyer.legal_name == "AmsterPower B.V."
    assert "Self-billing" in sb.notes
    async with db.session() as s:
        pdf = await billing.document_pdf(s, self_billed)  # printed like any invoice, titled as what it is
    assert b"<ram:TypeCode>389</ram:TypeCode>" in embedded_xml(pdf)
    assert "Self-billed invoice" in "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    _check_document(roaming, job, "emsp_owes_cpo", -1)
    _check_document(fee, job, "hub_fee", 1)
    _check_document(self_billed, job, "site_host_share", 1)

    # Each document's net is its party's statement (the hub's and the site host's are only those lines).
    async with db.session() as s:
        statements = {st.party: st for st in (await s.scalars(select(SettlementStatement))).all()}
        links = await s.scalar(select(func.count()).select_from(BillingDocumentCdr))
    assert fee.total_excl_vat == statements["NL*HUB"].net
    assert self_billed.total_excl_vat == statements["NL*SIT"].net
    assert roaming.total_excl_vat == -statements["NL*EMS"].net
    assert links == 3 * 5  # each CDR once on each kind of B2B document
    assert all(d.source_key and d.source_key.startswith(f"settlement:{PERIOD}:1:") for d in docs.values())
    assert {d.account_id is not None for d in (roaming, fee)} == {True} and self_billed.account_id is None

    # Run again (the job, then the on-demand path): nothing new, the same numbers.
    assert await run_settlement_documents_job(b2b_hub(db)) == 0
    assert job.run_id is not None
    again = await billing.issue_settlement_documents(db, job.run_id)
    assert [o.existing for o in again] == [True, True, True]
    assert set(await documents_by_number(db)) == set(docs)


async def test_concurrent_issuers_issue_each_document_once(db: Database, tmp_path: Path) -> None:
    job = await settled_period(db, tmp_path, sessions=3)
    await add_issuers(db)
    await site_host_account(db)
    assert job.run_id is not None
    results = await asyncio.gather(*(billing.issue_settlement_documents(db, job.run_id) for _ in range(3)))
    assert sum(o.issued for outcomes in results for o in outcomes) == 3
    docs = await documents_by_number(db)
    assert sorted(d.sequence for d in docs.values()) == [1, 1, 1]


async def test_cli_reports_what_is_not_issued_and_completes_it_later(
    db: Database, tmp_path: Path, cli: Cli
) -> None:
    await settled_period(db, tmp_path, sessions=2)
    await add_issuers(db, ("NL*AMP", "NL*HUB"))  # the eMSP and the site host have no legal identity yet

    out = (await cli("invoices", "issue-settlement", "--period", PERIOD)).output
    assert "issued HUB-2026-000001: hub fee invoice NL*HUB -> NL*AMP" in out
    assert "not issued: roaming invoice NL*AMP -> NL*EMS" in out and "NL*EMS has no legal identity" in out
    assert "not issued: self-billed invoice NL*SIT -> NL*AMP" in out and "NL*SIT has no legal identity" in out
    assert set(await documents_by_number(db)) == {"HUB-2026-000001"}
    # The job does not retry a run that has documents; the command issues what is still missing.
    assert await run_settlement_documents_job(b2b_hub(db)) == 0

    await add_issuers(db, ("NL*EMS",))
    await site_host_account(db)
    out = (await cli("invoices", "issue-settlement", "--period", PERIOD)).output
    assert "already issued HUB-2026-000001" in out
    assert "issued AMP-2026-000001: roaming invoice" in out and "issued SB-2026-000001: self-billed" in out
    assert set(await documents_by_number(db)) == {"HUB-2026-000001", "AMP-2026-000001", "SB-2026-000001"}

    for args, text in (
        (("--period", "2026-10"), "no closed settlement run"),
        (("--period", "2026-13"), "not a month"),
    ):
        result = await cli("invoices", "issue-settlement", *args, ok=False)
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert (
            result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:") and text in lines[0]
        )


async def test_an_export_that_is_not_the_runs_is_refused(db: Database, tmp_path: Path, cli: Cli) -> None:
    job = await settled_period(db, tmp_path, sessions=2)
    await add_issuers(db)
    await site_host_account(db)
    assert job.output_dir is not None
    lines = job.output_dir / "lines.csv"
    lines.write_text(lines.read_text().replace("NL*EMS", "NL*EMZ"))
    assert await run_settlement_documents_job(b2b_hub(db)) == 0
    result = await cli("invoices", "issue-settlement", "--period", PERIOD, ok=False)
    assert result.exit_code == 1 and "content hash differs" in result.output
    assert await documents_by_number(db) == {}


async def test_a_correction_after_the_close_is_on_the_next_periods_documents(
    db: Database, tmp_path: Path
) -> None:
    """A November CDR corrected in December (credit + new revision) settles in December as adjustments: the
    December documents carry the credit as negative lines next to the new CDR and December's own session,
    numbered after November's, equal to the December run to the cent."""
    await settled_period(db, tmp_path, sessions=2)
    await add_issuers(db)
    await site_host_account(db)
    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    async with db.session() as s:
        first = await s.scalar(select(Cdr.cdr_uid).where(Cdr.is_credit.is_(False)).order_by(Cdr.id).limit(1))
    assert first is not None
    credit, fresh = await correct_cdr(db, first, ())
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 12, 1, 0, 5, tzinfo=UTC), 30, "9.5", uid="dec-0")
    await rate_pending(db, ())
    december = await run_period(db, "2026-12", out_dir=tmp_path, close=True)
    assert december.result.summary.adjustments == 2 and december.result.summary.cdrs_settled == 3

    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    docs = await documents_by_number(db)
    assert {"AMP-2026-000002", "HUB-2026-000002", "SB-2026-000002"} <= set(docs)
    roaming = docs["AMP-2026-000002"]
    assert roaming.source_key and roaming.source_key.startswith("settlement:2026-12:1:")
    _check_document(roaming, december, "emsp_owes_cpo", -1)
    _check_document(docs["HUB-2026-000002"], december, "hub_fee", 1)
    _check_document(docs["SB-2026-000002"], december, "site_host_share", 1)
    lines = billing.load_invoice(roaming.document).lines
    credited = [ln for ln in lines if ln.cdr_id == credit.cdr_uid]
    assert credited and all(ln.net <= 0 and ln.quantity < 0 for ln in credited)
    assert any(ln.cdr_id == fresh.cdr_uid for ln in lines)
