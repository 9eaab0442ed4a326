"""B2B documents never mix category O with another VAT category (issue 14; EN 16931 BR-O-11, BR-O-12).

The site host agreement of AMS-CENTRAAL has no VAT rate of its own, so each CDR's site host share carries its
energy's VAT as settlement's split applied it; one of the site's chargers sells energy with "no VAT applicable"
(category O). November then gives, between the CPO and the site host (and between the CPO and the eMSP), taxed
lines and O lines: each pair gets two documents, the taxed one and the O one (no VAT ids, the seller named by its
registration id), their nets adding up to the statement's to the cent, each valid against the EN 16931
Schematron; a second run issues nothing. A property test over the core: whatever the mix of per-CDR rates, no
document :func:`billing.core.b2b.vat_parts` gives mixes O with another category, and the parts add up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

import billing
from billing.core.b2b import (
    B2BKind,
    DocumentPlan,
    SettlementLine,
    settlement_invoice,
    share_lines,
    vat_parts,
)
from billing.core.documents import (
    DocumentError,
    PaymentTerms,
    SupplyPeriod,
    VatCategory,
)
from billing.core.numbering import Series
from billing.core.vat import NORMAL
from billing.einvoice import cii_xml, validate_xml
from billing.settlement_documents import run_settlement_documents_job
from billing.store.accounts import party_account
from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import EVSE, BillingDocument, BillingIssuer, Connector, SettlementRun, SettlementStatement
from settlement.agreement_store import add_agreements
from settlement.job import run_period
from tariffs.rating import rate_pending
from tests.billing.b2b_kit import CLOCK, ISSUERS, SITE_HOST, b2b_hub, documents_by_number, party_pk
from tests.billing.einvoice_kit import schematron_failures
from tests.properties.strategies import budget
from tests.world.agreements import PRICING_NETWORK_AGREEMENTS
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

pytestmark = pytest.mark.clock(CLOCK)

D = Decimal
NO_VAT_TARIFF = {
    "country_code": "NL",
    "party_id": "AMP",
    "id": "AMS-NOVAT",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}],
    "last_updated": "2026-01-01T00:00:00Z",
}
"""Energy with "no VAT applicable" (OCPI: no ``vat``): category O on every document that carries it."""


async def _period_with_untaxed_energy(db: Database, out: Path) -> None:
    """November at AMS-CENTRAAL: sessions on AMS-01-1 (taxed energy) and on AMS-01-2 (energy without VAT)."""
    await seed_pricing_network(db)
    async with db.session() as s:
        await add_agreements(s, PRICING_NETWORK_AGREEMENTS)
        await prov.import_tariff(s, NO_VAT_TARIFF)
        evse = await s.scalar(select(EVSE).where(EVSE.uid == "AMS-01-2"))
        assert evse is not None
        connector = await s.scalar(select(Connector).where(Connector.evse_pk == evse.id))
        assert connector is not None
        connector.tariff_ids = [NO_VAT_TARIFF["id"]]
    base = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    for i in range(4):
        evse_uid = "AMS-01-1" if i % 2 == 0 else "AMS-01-2"
        kwh = str(D("6.5") + D(i) * D("3.217"))
        await seed_ended_session(db, evse_uid, base + timedelta(days=3 * i), 40, kwh, uid=f"nov-{i}")
    await rate_pending(db, ())
    job = await run_period(db, "2026-11", out_dir=out, close=True)
    assert job.result.summary.cdrs_settled == 4 and job.result.summary.cdrs_rejected == 0


async def _issuers_with_registration_ids(db: Database) -> None:
    """The parties' issuers, each with its trade register number (an O document names the seller by it), and
    the site host's identity (with its own) as a billing account with the CPO that self-bills it."""
    for n, (label, (key, who, prefix)) in enumerate(ISSUERS.items()):
        async with db.session() as s:
            await billing.add_issuer(
                s,
                billing.Issuer(
                    key=key,
                    identity=replace(who, registration_id=f"KVK-1000000{n}"),
                    currency="EUR",
                    invoice_series=Series(prefix),
                    credit_series=Series(f"{prefix}C"),
                    terms=PaymentTerms(30),
                ),
                party_id=await party_pk(db, label),
            )
    sit = await party_pk(db, "NL*SIT")
    async with db.session() as s:
        amp = await s.scalar(select(BillingIssuer).where(BillingIssuer.key == "amsterpower"))
        assert amp is not None
        await party_account(s, amp, sit, replace(SITE_HOST, registration_id="KVK-77777777"))


def _categories(row: BillingDocument) -> set[str]:
    return {line["vat_category"] for line in row.document["lines"]} | {
        b["category"] for b in row.document["breakdown"]
    }


async def test_a_site_host_share_with_untaxed_energy_is_two_documents_never_one_mixed(
    db: Database, tmp_path: Path
) -> None:
    await _period_with_untaxed_energy(db, tmp_path)
    await _issuers_with_registration_ids(db)
    issued = await run_settlement_documents_job(b2b_hub(db))
    docs = await documents_by_number(db)
    assert issued == len(docs) == 5  # roaming taxed + O, hub fee (its own rate), site host taxed + O
    for number, row in docs.items():
        categories = _categories(row)
        assert "O" not in categories or categories == {"O"}, (number, categories)
        doc = billing.load_invoice(row.document)
        if categories == {"O"}:
            assert doc.seller.vat_id is None and doc.buyer.vat_id is None and doc.seller.registration_id
            assert doc.totals.tax == 0
        xml = cii_xml(doc)
        validate_xml(xml)
        assert schematron_failures(xml) == [], number
    host = [docs["SB-2026-000001"], docs["SB-2026-000002"]]
    assert [_categories(r) for r in host] == [{"S"}, {"O"}]
    assert [r.source_key.endswith(":O") for r in host if r.source_key] == [False, True]
    assert all(r.kind == "self_billed" for r in host)
    async with db.session() as s:
        statements = {
            st.party: st.net
            for st in (await s.scalars(select(SettlementStatement))).all()
            if st.party in ("NL*SIT", "NL*AMP")
        }
    assert sum(r.total_excl_vat for r in host) == statements["NL*SIT"]  # the two add up to the statement
    roaming = [docs["AMP-2026-000001"], docs["AMP-2026-000002"]]
    assert [_categories(r) for r in roaming] == [{"S"}, {"O"}]
    # a second run issues nothing (both parts found by their source keys)
    assert await run_settlement_documents_job(b2b_hub(db)) == 0
    outcomes = await billing.issue_settlement_documents(db, await _run_id(db))
    assert [o.number for o in outcomes if o.kind is B2BKind.SITE_HOST] == ["SB-2026-000001", "SB-2026-000002"]
    assert all(o.existing for o in outcomes)
    site = [o for o in outcomes if o.kind is B2BKind.SITE_HOST]
    assert sum(o.net for o in site) == statements["NL*SIT"]


async def _run_id(db: Database) -> int:
    async with db.session() as s:
        run = await s.scalar(select(SettlementRun.id).where(SettlementRun.status == "closed"))
    assert run is not None
    return run


def _plan(rates: list[Decimal | None], nets: list[Decimal]) -> tuple[DocumentPlan, dict[str, Decimal | None]]:
    lines = tuple(
        SettlementLine(
            "2026-11", f"cdr-{i}", 1, "site_host_share", "NL*SIT", "NL*AMP", "EUR", net, D(0), net, "a", 1
        )
        for i, net in enumerate(nets)
    )
    return DocumentPlan(B2BKind.SITE_HOST, "NL*SIT", "NL*AMP", "EUR", lines), {
        f"cdr-{i}": rate for i, rate in enumerate(rates)
    }


@budget(60)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from([D(0), D(9), D(21), D("5.5")])),
            st.decimals(min_value=D("0.01"), max_value=D("500"), places=2),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_no_part_mixes_outside_scope_with_another_category(
    cdrs: list[tuple[Decimal | None, Decimal]],
) -> None:
    plan, rates = _plan([r for r, _ in cdrs], [n for _, n in cdrs])
    period = SupplyPeriod(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    lines = share_lines(plan, rates, {}, NORMAL)
    parts = vat_parts(lines)
    assert sorted(ln.line_id for p in parts for ln in p) == sorted(ln.line_id for ln in lines)
    for part in parts:
        categories = {ln.vat_category for ln in part}
        assert VatCategory.OUTSIDE_SCOPE not in categories or categories == {VatCategory.OUTSIDE_SCOPE}
    total = D(0)
    for n, part in enumerate(parts):
        seller = replace(SITE_HOST, registration_id="KVK-77777777")
        doc = settlement_invoice(
            plan,
            part,
            series="SB",
            number=f"SB-2026-00000{n + 1}",
            issue_date=period.end.date(),
            seller=seller,
            buyer=ISSUERS["NL*AMP"][1],
            terms=PaymentTerms(30),
            treatment=NORMAL,
            period=period,
            reference="Settlement 2026-11 run 1",
            whole=lines if len(parts) > 1 else None,
        )
        assert {b.category for b in doc.breakdown} == {ln.vat_category for ln in part}
        total += doc.totals.tax_exclusive
    assert total == plan.billed_net


def test_one_document_with_o_next_to_another_category_is_refused() -> None:
    plan, rates = _plan([None, D(21)], [D(10), D(20)])
    lines = share_lines(plan, rates, {}, NORMAL)
    period = SupplyPeriod(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    with pytest.raises(DocumentError, match="BR-O-11"):
        settlement_invoice(
            plan,
            lines,
            series="SB",
            number="SB-2026-000001",
            issue_date=period.end.date(),
            seller=replace(SITE_HOST, registration_id="KVK-77777777"),
            buyer=ISSUERS["NL*AMP"][1],
            terms=PaymentTerms(30),
            treatment=NORMAL,
            period=period,
            reference="Settlement 2026-11 run 1",
        )
    assert [[ln.vat_category for ln in p] for p in vat_parts(lines)] == [
        [VatCategory.STANDARD],
        [VatCategory.OUTSIDE_SCOPE],
    ]
