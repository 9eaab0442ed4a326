"""The money path of a CDR an external CPO posted to the hub as its eMSP (issue 14, item 4): the fleet's monthly
invoice bills it at exactly the CPO's price (the hub's billing, unchanged, reading the stored row), and
settlement splits it on the eMSP side only (the hub's eMSP owes the CPO its total; no hub fee, no site host
share, whatever agreements are in force) or rejects it for want of a roaming agreement. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import billing
from settlement.agreement_store import add_agreements
from settlement.job import run_period
from tests.ocpi.received_cdrs_kit import cdr_body, cdrs_url, emsp_world, ion_headers, post_cdr

if TYPE_CHECKING:
    from tests.ocpi.conftest import RunningHub

START = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
ROAMING = {
    "kind": "roaming",
    "agreement_id": "roam-evh-ion",
    "version": 1,
    "valid_from": "2026-01-01",
    "emsp": "NL*EVH",
    "cpo": "BE*ION",
}
HUB_FEE_FOR_EVERY_CPO = {
    "kind": "hub_fee",
    "agreement_id": "hub-fee-eur",
    "version": 1,
    "valid_from": "2026-01-01",
    "hub": "HUB",
    "currency": "EUR",
    "percentage": "0.04",
    "fixed_per_session": "0.15",
    "vat_rates": {"NLD": "0.21", "BEL": "0.21"},
}


async def _post(hub: RunningHub) -> None:
    body = cdr_body(start=START, fixed_cost=None, energy_cost=("8.00", "9.68"))
    async with hub.http() as client:
        reply, answer = await post_cdr(client, cdrs_url(hub.url), body, ion_headers())
    assert (reply.status_code, answer["status_code"]) == (201, 1000), reply.text


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_fleets_monthly_invoice_bills_it_at_the_cpos_price(hub: RunningHub) -> None:
    world = await emsp_world(hub.db, account=True)
    await _post(hub)  # 8.00 energy + 2.00 time = 10.00 excl., 12.10 incl. VAT (21 %)
    assert world.account_id is not None
    async with hub.db.session() as s:
        row = await billing.issue_monthly_invoice(s, world.account_id, "2026-11")
    assert row is not None
    invoice = billing.load_invoice(row.document)
    ours = [ln for ln in invoice.lines if ln.cdr_id == "BE*ION*ION-CDR-0001"]
    assert [(ln.description, ln.quantity, ln.unit_price, ln.net, ln.vat_rate) for ln in ours] == [
        ("Energy", Decimal("20.5"), Decimal("0.3902"), Decimal("8.00"), Decimal(21)),
        ("Charging time", Decimal("1.0"), Decimal("2.0000"), Decimal("2.00"), Decimal(21)),
    ]
    assert {ln.group for ln in ours} == {("Ann", "Van NL-1")}
    assert {ln.session_ref for ln in ours} == {"ION-SESSION-0001"}  # the CPO's session id
    assert invoice.totals.tax_exclusive == Decimal("10.00")  # the CPO's total_cost.excl_vat
    assert row.payable == Decimal("12.10")  # ... and its incl_vat: published price == charged price
    async with hub.db.session() as s:  # invoiced once: the next run finds it issued
        again = await billing.issue_monthly_invoice(s, world.account_id, "2026-11")
    assert again is not None and again.id == row.id


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_settlement_splits_it_on_the_emsp_side_only(hub: RunningHub, tmp_path: Path) -> None:
    await emsp_world(hub.db)
    async with hub.db.session() as s:
        await add_agreements(s, [ROAMING, HUB_FEE_FOR_EVERY_CPO])
    await _post(hub)
    job = await run_period(hub.db, "2026-11", out_dir=tmp_path)
    summary = job.result.summary
    assert (summary.cdrs_settled, summary.cdrs_rejected) == (1, 0)
    lines = job.result.lines
    got = sorted(
        (str(r.kind), str(r.party), str(r.counterparty), int(r.net_minor), int(r.vat_minor))
        for r in lines.itertuples(index=False)
    )
    # the hub is BE*ION's eMSP, not its hub: the fee for every CPO ("*") is the hosted CPOs', not BE*ION's
    assert got == [
        ("cpo_retained", "BE*ION", "NL*EVH", 1000, 210),
        ("emsp_owes_cpo", "NL*EVH", "BE*ION", -1000, -210),
    ]
    statements = {(st.party, st.currency): (st.net, st.vat, st.gross) for st in job.statements}
    assert statements == {
        ("BE*ION", "EUR"): (Decimal("10.00"), Decimal("2.10"), Decimal("12.10")),
        ("NL*EVH", "EUR"): (Decimal("-10.00"), Decimal("-2.10"), Decimal("-12.10")),
    }


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_without_a_roaming_agreement_settlement_rejects_it_saying_so(
    hub: RunningHub, tmp_path: Path
) -> None:
    await emsp_world(hub.db)
    async with hub.db.session() as s:
        await add_agreements(s, [HUB_FEE_FOR_EVERY_CPO])
    await _post(hub)
    job = await run_period(hub.db, "2026-11", out_dir=tmp_path)
    rejected = job.result.rejected
    assert [(str(r.cdr_id), str(r.reason)) for r in rejected.itertuples(index=False)] == [
        ("BE*ION*ION-CDR-0001", "no_roaming_agreement")
    ]
    assert job.result.summary.cdrs_settled == 0
