"""The pure part of the B2B settlement documents (issue 14): which documents a run's lines give, between whom,
signed as billed; the ledger the statements are checked against; a period of credits only is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.core.b2b import (
    B2BKind,
    b2b_treatment,
    is_credit,
    ledger_totals,
    parse_lines_csv,
    plan_documents,
    settlement_credit_note,
    settlement_invoice,
    share_lines,
    source_key,
)
from billing.core.documents import (
    Address,
    CreditNote,
    DocumentError,
    Identity,
    Invoice,
    PaymentTerms,
    SupplyPeriod,
    VatCategory,
)
from billing.core.en16931 import category_tax
from billing.core.vat import NORMAL, OUTSIDE_EU, OUTSIDE_EU_REASON
from billing.einvoice import cii_xml, validate_xml
from billing.store.codec import load_credit_note, to_json
from tests.billing.b2b_kit import ISSUERS, SITE_HOST
from tests.billing.einvoice_kit import schematron_failures

D = Decimal
NOV = SupplyPeriod(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
CSV = """settlement_period,service_period,cdr_id,line_no,kind,party,role,counterparty,counterparty_role,currency,net,vat,gross,agreement_id,agreement_version,is_adjustment,adjusts_period,adjusts_cdr_id
2026-11,2026-11,C1,0,emsp_owes_cpo,NL*EMS,emsp,NL*AMP,cpo,EUR,-10.00,-2.10,-12.10,roam,1,false,,
2026-11,2026-11,C1,1,cpo_retained,NL*AMP,cpo,NL*EMS,emsp,EUR,8.40,1.77,10.17,roam,1,false,,
2026-11,2026-11,C1,2,hub_fee,NL*HUB,hub,NL*AMP,cpo,EUR,0.60,0.13,0.73,fee,1,false,,
2026-11,2026-11,C1,3,site_host_share,NL*SIT,site_host,NL*AMP,cpo,EUR,1.00,0.20,1.20,site,1,false,,
2026-11,2026-10,C0,2,hub_fee,NL*HUB,hub,NL*AMP,cpo,EUR,-0.80,-0.17,-0.97,fee,1,true,2026-10,C9
"""


def test_lines_give_one_document_per_kind_seller_and_buyer() -> None:
    lines = parse_lines_csv(CSV)
    plans = plan_documents(lines)
    assert [(p.kind, p.seller, p.buyer, p.issuer_party) for p in plans] == [
        (B2BKind.ROAMING, "NL*AMP", "NL*EMS", "NL*AMP"),
        (B2BKind.HUB_FEE, "NL*HUB", "NL*AMP", "NL*HUB"),
        (B2BKind.SITE_HOST, "NL*SIT", "NL*AMP", "NL*AMP"),
    ]
    roaming, fee, host = plans
    assert (roaming.billed_net, roaming.billed_vat) == (D("10.00"), D("2.10"))
    assert (fee.billed_net, fee.billed_vat) == (D("-0.20"), D("-0.04"))  # an adjustment's credit nets off
    assert host.self_billed and not roaming.self_billed
    # The ledger: both sides of each paying line (what the statements hold); cpo_retained moves no money.
    totals = ledger_totals(lines)
    assert totals[("NL*AMP", "EUR")] == (D("9.20"), D("1.94"), D("11.14"))  # +10.00 -0.60 -1.00 +0.80
    assert totals[("NL*EMS", "EUR")] == (D("-10.00"), D("-2.10"), D("-12.10"))
    assert sum((t[2] for t in totals.values()), D(0)) == 0
    assert source_key("2026-11", 1, 42, "NL*EMS") == "settlement:2026-11:1:42:NL*EMS"
    with pytest.raises(DocumentError, match="not a settlement line"):
        parse_lines_csv(CSV.replace("-10.00", "ten"))


def _invoice(plan_index: int, rates: dict[str, Decimal | None], number: str = "SB-2026-000001") -> Invoice:
    plan = plan_documents(parse_lines_csv(CSV))[plan_index]
    lines = share_lines(plan, rates, {}, NORMAL)
    return settlement_invoice(
        plan,
        lines,
        series=number.split("-")[0],
        number=number,
        issue_date=date(2026, 12, 1),
        seller=SITE_HOST if plan.self_billed else ISSUERS[plan.seller][1],
        buyer=ISSUERS[plan.buyer][1],
        terms=PaymentTerms(30),
        treatment=NORMAL,
        period=NOV,
        reference="Settlement 2026-11 run 1",
    )


def test_a_self_billed_invoice_is_type_389_with_the_self_billing_mention() -> None:
    invoice = _invoice(2, {"C1": D("20")})
    assert invoice.self_billed and invoice.notes[0] == "Self-billing"
    assert invoice.totals.tax_exclusive == D("1.00") and invoice.totals.tax == D("0.20")
    xml = cii_xml(invoice)
    assert b"<ram:TypeCode>389</ram:TypeCode>" in xml
    validate_xml(xml)
    assert schematron_failures(xml) == []


def test_a_period_of_credits_only_is_not_an_invoice() -> None:
    with pytest.raises(DocumentError, match="below zero"):
        _invoice(1, {"C1": D("21"), "C0": D("21")}, "HUB-2026-000001")
    with pytest.raises(DocumentError, match="no VAT rate"):
        _invoice(1, {"C1": D("21")}, "HUB-2026-000001")


def _credit_note(plan_index: int, number: str) -> CreditNote:
    plan = plan_documents(parse_lines_csv(CSV))[plan_index]
    lines = share_lines(plan, {"C1": D("21"), "C0": D("21")}, {"C1": NOV, "C0": NOV}, NORMAL)
    assert is_credit(lines, NORMAL)
    return settlement_credit_note(
        plan,
        lines,
        series=number.rsplit("-", 2)[0],
        number=number,
        issue_date=date(2026, 12, 1),
        seller=SITE_HOST if plan.self_billed else ISSUERS[plan.seller][1],
        buyer=ISSUERS[plan.buyer][1],
        treatment=NORMAL,
        credits=("HUB-2026-000007", date(2026, 11, 1)),
        reference="Settlement 2026-11 run 1",
    )


def test_a_period_below_zero_is_the_same_issuers_credit_note_equal_to_the_statement() -> None:
    """The hub fee of the sample run nets to -0.20 (an adjustment's credit of -0.80 over a fee of 0.60): a
    credit note (381) from the hub to the CPO crediting 0.20 excl. VAT, naming the invoice it corrects."""
    note = _credit_note(1, "HUBC-2026-000001")
    plan = plan_documents(parse_lines_csv(CSV))[1]
    assert note.totals.tax_exclusive == -plan.billed_net == D("0.20")
    assert note.totals.tax == category_tax(D("0.20"), D("21"), "EUR") == D("0.04")
    assert [(ln.net, ln.quantity, ln.credits_line) for ln in note.lines] == [
        (D("0.80"), D(1), "C0:2"),
        (D("-0.60"), D(-1), "C1:2"),
    ]
    assert (note.invoice_number, note.invoice_date) == ("HUB-2026-000007", date(2026, 11, 1))
    assert not note.self_billed and "credits exceed" in note.reason
    xml = cii_xml(note)
    assert b"<ram:TypeCode>381</ram:TypeCode>" in xml
    assert b"<ram:IssuerAssignedID>HUB-2026-000007</ram:IssuerAssignedID>" in xml
    validate_xml(xml)
    assert schematron_failures(xml) == []
    # A period at or above zero stays an invoice.
    fee_lines = share_lines(plan, {"C1": D("21"), "C0": D("21")}, {}, NORMAL)
    assert is_credit(fee_lines[:1], NORMAL) and not is_credit(fee_lines[1:], NORMAL)


def test_a_self_billed_period_below_zero_is_a_self_billed_credit_note_261() -> None:
    host = CSV.replace(
        "site_host_share,NL*SIT,site_host,NL*AMP,cpo,EUR,1.00,0.20,1.20", "x,x,x,x,x,EUR,0,0,0"
    )
    host += "2026-11,2026-10,C0,3,site_host_share,NL*SIT,site_host,NL*AMP,cpo,EUR,-1.50,-0.32,-1.82,site,1,true,2026-10,C9\n"
    plan = plan_documents(parse_lines_csv(host))[2]
    assert plan.self_billed and plan.billed_net == D("-1.50")
    lines = share_lines(plan, {"C0": D("21")}, {"C0": NOV}, NORMAL)
    note = settlement_credit_note(
        plan,
        lines,
        series="SBC",
        number="SBC-2026-000001",
        issue_date=date(2026, 12, 1),
        seller=SITE_HOST,
        buyer=ISSUERS["NL*AMP"][1],
        treatment=NORMAL,
        credits=("SB-2026-000003", date(2026, 11, 1)),
        reference="Settlement 2026-11 run 1",
    )
    assert note.self_billed and note.notes[0] == "Self-billing" and note.totals.tax_exclusive == D("1.50")
    xml = cii_xml(note)
    assert b"<ram:TypeCode>261</ram:TypeCode>" in xml
    validate_xml(xml)
    assert schematron_failures(xml) == []
    assert load_credit_note(to_json(note)) == note


UK_CPO = Identity(
    "London Charge Co Ltd",
    Address("1 Pancras Square", "N1C 4AG", "London", "GB"),
    "GB123456789",
    business=True,
)


def test_a_hub_fee_to_a_business_outside_the_eu_is_outside_the_scope_of_vat() -> None:
    """VAT Directive Art. 44: the hub's B2B service is supplied where the customer is established, so an NL hub
    billing a GB CPO charges no EU VAT: category O with the reason, no VAT ids, the seller's registration id
    (BR-O-02, BR-CO-26); a credit note of such a period is O as well. Charging (roaming) and a consumer are
    not this rule's."""
    hub = ISSUERS["NL*HUB"][1]
    assert b2b_treatment(B2BKind.HUB_FEE, hub, UK_CPO) == OUTSIDE_EU
    assert b2b_treatment(B2BKind.HUB_FEE, hub, UK_CPO, exemption="Small business scheme") == OUTSIDE_EU
    assert b2b_treatment(B2BKind.HUB_FEE, hub, replace(UK_CPO, business=False)) == NORMAL
    assert b2b_treatment(B2BKind.ROAMING, hub, UK_CPO, seller_allows_reverse_charge=True) == NORMAL
    assert (
        b2b_treatment(B2BKind.HUB_FEE, UK_CPO, hub).kind is not OUTSIDE_EU.kind
    )  # a non-EU seller: not EU VAT's
    plan = plan_documents(parse_lines_csv(CSV))[1]
    lines = share_lines(plan, {"C1": D("21"), "C0": D("21")}, {"C1": NOV, "C0": NOV}, OUTSIDE_EU)
    assert {ln.vat_category for ln in lines} == {VatCategory.OUTSIDE_SCOPE}
    registered = replace(hub, registration_id="KVK 22222222")
    note = settlement_credit_note(
        plan,
        lines,
        series="HUBC",
        number="HUBC-2026-000001",
        issue_date=date(2026, 12, 1),
        seller=registered,
        buyer=UK_CPO,
        treatment=OUTSIDE_EU,
        credits=("HUB-2026-000007", date(2026, 11, 1)),
        reference="Settlement 2026-11 run 1",
    )
    assert note.seller.vat_id is None and note.buyer.vat_id is None and note.totals.tax == 0
    assert [b.exemption_reason for b in note.breakdown] == [OUTSIDE_EU_REASON]
    xml = cii_xml(note)
    validate_xml(xml)
    assert schematron_failures(xml) == []
    assert load_credit_note(to_json(note)) == note
    with pytest.raises(DocumentError, match="registration id"):
        settlement_credit_note(
            plan,
            lines,
            series="HUBC",
            number="HUBC-2026-000001",
            issue_date=date(2026, 12, 1),
            seller=replace(hub, registration_id=None),  # an issuer stored before the id was required
            buyer=UK_CPO,
            treatment=OUTSIDE_EU,
            credits=("HUB-2026-000007", date(2026, 11, 1)),
            reference="Settlement 2026-11 run 1",
        )
