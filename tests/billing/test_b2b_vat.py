"""Cross-border reverse charge on the B2B documents of a closed settlement period (issue 14): the same rule
(billing.core.vat.treatment_for, by billing.core.b2b.b2b_treatment) for every kind. The hub (NL) billing its fee
to a CPO in DE, both with VAT ids, reverse charges it (AE, the Art. 226(11a) wording, no VAT) even though the
hub's issuer does not reverse charge its charging supplies; the same CPO's roaming invoice to a Dutch eMSP
follows the CPO issuer's own choice; same-country documents stay standard-rated. Billing a CPO established
outside the EU (GB) the hub's fee is not subject to EU VAT (Art. 44): category O, no VAT ids, the hub named by
its registration id (BR-O-02, BR-CO-26), or not issued when it has none."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import billing
from billing.core.documents import Address, Identity, Invoice, PaymentTerms, VatCategory
from billing.core.numbering import Series
from billing.core.vat import OUTSIDE_EU_REASON, REVERSE_CHARGE_NOTE
from billing.einvoice import cii_xml, validate_xml
from billing.settlement_documents import run_settlement_documents_job
from kernel.db.engine import Database
from kernel.models import BillingIssuer, SettlementStatement
from tests.billing.b2b_kit import (
    CLOCK,
    ISSUERS,
    b2b_hub,
    documents_by_number,
    party_pk,
    settled_period,
    site_host_account,
)
from tests.billing.einvoice_kit import schematron_failures
from tests.billing.store_kit import without_registration_id

pytestmark = pytest.mark.clock(CLOCK)

GERMAN_CPO = Identity(
    "AmsterPower GmbH",
    Address("Friedrichstrasse 10", "10117", "Berlin", "DE"),
    vat_id="DE123456789",
    registration_id="HRB 654321",
    business=True,
)


async def _issuers(db: Database, cpo: Identity, *, cpo_reverse_charges: bool = False) -> None:
    for label, (key, who, prefix) in ISSUERS.items():
        async with db.session() as s:
            await billing.add_issuer(
                s,
                billing.Issuer(
                    key=key,
                    identity=cpo if label == "NL*AMP" else who,
                    currency="EUR",
                    invoice_series=Series(prefix),
                    credit_series=Series(f"{prefix}C"),
                    terms=PaymentTerms(30),
                    reverse_charge_allowed=cpo_reverse_charges and label == "NL*AMP",
                ),
                party_id=await party_pk(db, label),
            )


def _categories(invoice: Invoice) -> set[VatCategory]:
    return {line.vat_category for line in invoice.lines}


def _valid(invoice: Invoice) -> None:
    xml = cii_xml(invoice)
    validate_xml(xml)
    assert schematron_failures(xml) == []


async def test_the_hub_fee_to_a_cpo_in_another_member_state_is_reverse_charged(
    db: Database, tmp_path: Path
) -> None:
    await settled_period(db, tmp_path, sessions=3)
    await _issuers(db, GERMAN_CPO)
    await site_host_account(db)
    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    docs = await documents_by_number(db)
    fee = billing.load_invoice(docs["HUB-2026-000001"].document)
    async with db.session() as s:
        hub_net = await s.scalar(select(SettlementStatement.net).where(SettlementStatement.party == "NL*HUB"))
    assert fee.buyer.country == "DE" and fee.seller.country == "NL"
    assert _categories(fee) == {VatCategory.REVERSE_CHARGE}
    assert fee.totals.tax == 0 and fee.totals.tax_exclusive == hub_net == fee.totals.payable
    assert REVERSE_CHARGE_NOTE in fee.notes
    assert [b.exemption_reason for b in fee.breakdown] == [REVERSE_CHARGE_NOTE]
    assert docs["HUB-2026-000001"].total_vat == 0
    _valid(fee)
    # The same CPO's roaming invoice to the Dutch eMSP: the CPO issuer does not reverse charge its charging.
    roaming = billing.load_invoice(docs["AMP-2026-000001"].document)
    assert _categories(roaming) == {VatCategory.STANDARD} and roaming.totals.tax > 0
    # The Dutch site host's self-billed share for a Dutch site: standard-rated (the site's country).
    host = billing.load_invoice(docs["SB-2026-000001"].document)
    assert _categories(host) == {VatCategory.STANDARD} and host.totals.tax > 0
    _valid(host)


async def test_same_country_hub_fee_stays_standard_rated_and_roaming_follows_the_cpos_choice(
    db: Database, tmp_path: Path
) -> None:
    await settled_period(db, tmp_path, sessions=2)
    await _issuers(db, ISSUERS["NL*AMP"][1], cpo_reverse_charges=True)
    await site_host_account(db)
    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    docs = await documents_by_number(db)
    fee = billing.load_invoice(docs["HUB-2026-000001"].document)
    assert _categories(fee) == {VatCategory.STANDARD} and fee.totals.tax > 0
    assert REVERSE_CHARGE_NOTE not in fee.notes
    # NL CPO to NL eMSP: no reverse charge even where the CPO allows it (same member state).
    roaming = billing.load_invoice(docs["AMP-2026-000001"].document)
    assert _categories(roaming) == {VatCategory.STANDARD}


async def test_a_cpo_that_reverse_charges_its_roaming_does_so_across_borders(
    db: Database, tmp_path: Path
) -> None:
    await settled_period(db, tmp_path, sessions=2)
    await _issuers(db, GERMAN_CPO, cpo_reverse_charges=True)
    await site_host_account(db)
    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    roaming = billing.load_invoice((await documents_by_number(db))["AMP-2026-000001"].document)
    assert roaming.seller.country == "DE" and roaming.buyer.country == "NL"
    assert _categories(roaming) == {VatCategory.REVERSE_CHARGE} and roaming.totals.tax == 0
    assert REVERSE_CHARGE_NOTE in roaming.notes
    _valid(roaming)


UK_CPO = Identity(
    "AmsterPower UK Ltd",
    Address("1 Pancras Square", "N1C 4AG", "London", "GB"),
    vat_id="GB123456789",
    registration_id="Companies House 07654321",
    business=True,
)
HUB_REGISTRATION = "KVK 87654321"


async def _hub_registered(db: Database) -> None:
    """The hub's issuer with its legal registration id (what names it on a document outside the VAT's scope)."""
    async with db.session() as s:
        row = await s.scalar(select(BillingIssuer).where(BillingIssuer.key == ISSUERS["NL*HUB"][0]))
        assert row is not None
        row.registration_id = HUB_REGISTRATION


async def test_the_hub_fee_to_a_cpo_outside_the_eu_is_not_subject_to_vat(
    db: Database, tmp_path: Path
) -> None:
    await settled_period(db, tmp_path, sessions=3)
    await _issuers(db, UK_CPO)
    await _hub_registered(db)
    await site_host_account(db)
    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    docs = await documents_by_number(db)
    fee = billing.load_invoice(docs["HUB-2026-000001"].document)
    async with db.session() as s:
        hub_net = await s.scalar(select(SettlementStatement.net).where(SettlementStatement.party == "NL*HUB"))
    assert fee.seller.country == "NL" and fee.buyer.country == "GB"
    assert _categories(fee) == {VatCategory.OUTSIDE_SCOPE}
    assert [(b.category, b.rate, b.tax, b.exemption_reason) for b in fee.breakdown] == [
        (VatCategory.OUTSIDE_SCOPE, 0, 0, OUTSIDE_EU_REASON)
    ]
    assert fee.totals.tax == 0 and fee.totals.tax_exclusive == hub_net == fee.totals.payable
    assert REVERSE_CHARGE_NOTE not in fee.notes
    # BR-O-02: no VAT id on either side; BR-CO-26: the seller named by its registration id (BT-30).
    assert fee.seller.vat_id is None and fee.buyer.vat_id is None
    assert fee.seller.registration_id == HUB_REGISTRATION
    assert docs["HUB-2026-000001"].total_vat == 0
    xml = cii_xml(fee)
    assert b'schemeID="VA"' not in xml and HUB_REGISTRATION.encode() in xml
    _valid(fee)
    # Charging stays the CPO's decision: its roaming invoice is standard-rated as before.
    roaming = billing.load_invoice(docs["AMP-2026-000001"].document)
    assert _categories(roaming) == {VatCategory.STANDARD}


async def test_a_hub_without_a_registration_id_cannot_bill_outside_the_eu(
    db: Database, tmp_path: Path
) -> None:
    job = await settled_period(db, tmp_path, sessions=2)
    await _issuers(db, UK_CPO)
    await without_registration_id(db, ISSUERS["NL*HUB"][0])  # stored before the id was required
    await site_host_account(db)
    outcomes = await billing.issue_settlement_documents(db, job.run_id)
    [fee] = [o for o in outcomes if o.kind.value == "hub_fee"]
    assert fee.number is None and fee.reason is not None
    assert "registration id" in fee.reason and "BR-O-02" in fee.reason
    assert {o.kind.value for o in outcomes if o.number} == {"roaming", "site_host"}
