"""An :class:`~billing.core.documents.Invoice` or :class:`~billing.core.documents.CreditNote` as UN/CEFACT
Cross Industry Invoice XML (D16B), Factur-X / ZUGFeRD profile EN 16931 (guideline ``urn:cen.eu:en16931:2017``).

Pure: the document in, UTF-8 bytes out, the same bytes for the same document. Every business term the core
carries is written where EN 16931's CII syntax binding puts it (BT-x in the comments); amounts keep the
document's rounding (2 decimals), a credit note's amounts are positive as the core keeps them (type 381), a
negative invoice line keeps its negative quantity and a positive net price (BR-27). Dates are the UTC calendar
dates of the supply instants (CII format 102, ``YYYYMMDD``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from lxml import etree

from billing.core.documents import (
    CreditNote,
    Identity,
    Invoice,
    InvoiceLine,
    SupplyPeriod,
    VatBreakdown,
    VatCategory,
)

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}
GUIDELINE = "urn:cen.eu:en16931:2017"
"""BT-24: the specification identifier of Factur-X profile EN 16931 (the ``factur-x`` library reads the level
from it)."""
INVOICE_TYPE = "380"
CREDIT_NOTE_TYPE = "381"
SELF_BILLED_TYPE = "389"  # UNTDID 1001: self-billed invoice (EN 16931 BT-3)
SELF_BILLED_CREDIT_TYPE = "261"  # UNTDID 1001: self-billed credit note

Document = Invoice | CreditNote


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    prefix, name = tag.split(":")
    node = etree.SubElement(parent, f"{{{NSMAP[prefix]}}}{name}", attrs)
    if text is not None:
        node.text = text
    return node


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def _decimal(value: Decimal) -> str:
    """A quantity, price or rate without exponent or trailing zeros (``21``, ``5.5``, ``0.054100`` → ``0.0541``)."""
    text = f"{value.normalize():f}"
    return text if text not in ("-0", "") else "0"


def _day(value: date | datetime) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    return value.strftime("%Y%m%d")


def _date(parent: etree._Element, tag: str, value: date | datetime, qualified: bool = False) -> None:
    holder = _el(parent, tag)
    _el(holder, "qdt:DateTimeString" if qualified else "udt:DateTimeString", _day(value), format="102")


def _period(parent: etree._Element, period: SupplyPeriod) -> None:
    node = _el(parent, "ram:BillingSpecifiedPeriod")  # BG-14 / BG-26
    _date(node, "ram:StartDateTime", period.start)
    _date(node, "ram:EndDateTime", period.end)


def _party(parent: etree._Element, tag: str, who: Identity) -> None:
    node = _el(parent, tag)  # BG-4 seller / BG-7 buyer
    _el(node, "ram:Name", who.legal_name)  # BT-27 / BT-44
    if who.registration_id:
        legal = _el(node, "ram:SpecifiedLegalOrganization")
        _el(legal, "ram:ID", who.registration_id)  # BT-30 / BT-47
    address = _el(node, "ram:PostalTradeAddress")  # BG-5 / BG-8
    for tag, text in (
        ("ram:PostcodeCode", who.address.postal_code),
        ("ram:LineOne", who.address.street),
        ("ram:CityName", who.address.city),
    ):
        if text:  # a consumer's address may be its country alone (BR-10, BR-11); no empty element
            _el(address, tag, text)
    _el(address, "ram:CountryID", who.address.country)  # BT-40 / BT-55
    if who.email:
        uri = _el(node, "ram:URIUniversalCommunication")
        _el(uri, "ram:URIID", who.email, schemeID="EM")  # BT-34 / BT-49
    if who.vat_id:
        tax = _el(node, "ram:SpecifiedTaxRegistration")
        _el(tax, "ram:ID", who.vat_id, schemeID="VA")  # BT-31 / BT-48


def _line_notes(line: InvoiceLine) -> list[str]:
    refs = [
        ("CDR", line.cdr_id),
        ("Session", line.session_ref),
        ("Signed meter data", line.signed_data_ref),
        ("Credits invoice line", line.credits_line),
    ]
    notes = [f"{name}: {value}" for name, value in refs if value]
    if line.group:
        notes.append("Group: " + " / ".join(line.group))
    return notes


def _line(parent: etree._Element, line: InvoiceLine) -> None:
    item = _el(parent, "ram:IncludedSupplyChainTradeLineItem")  # BG-25
    doc = _el(item, "ram:AssociatedDocumentLineDocument")
    _el(doc, "ram:LineID", line.line_id)  # BT-126
    notes = _line_notes(line)
    if notes:
        _el(_el(doc, "ram:IncludedNote"), "ram:Content", "; ".join(notes))  # BT-127
    product = _el(item, "ram:SpecifiedTradeProduct")
    _el(product, "ram:Name", line.description)  # BT-153
    agreement = _el(item, "ram:SpecifiedLineTradeAgreement")
    price = _el(agreement, "ram:NetPriceProductTradePrice")
    _el(price, "ram:ChargeAmount", _decimal(line.unit_price))  # BT-146
    delivery = _el(item, "ram:SpecifiedLineTradeDelivery")
    _el(delivery, "ram:BilledQuantity", _decimal(line.quantity), unitCode=line.unit.value)  # BT-129, BT-130
    settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
    tax = _el(settlement, "ram:ApplicableTradeTax")
    _el(tax, "ram:TypeCode", "VAT")
    _el(tax, "ram:CategoryCode", line.vat_category.value)  # BT-151
    if line.vat_category is not VatCategory.OUTSIDE_SCOPE:  # BR-O-05: no rate outside the scope of VAT
        _el(tax, "ram:RateApplicablePercent", _decimal(line.vat_rate))  # BT-152
    if line.supply is not None:
        _period(settlement, line.supply)
    summation = _el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
    _el(summation, "ram:LineTotalAmount", _amount(line.net))  # BT-131


def _vat(parent: etree._Element, vat: VatBreakdown) -> None:
    node = _el(parent, "ram:ApplicableTradeTax")  # BG-23
    _el(node, "ram:CalculatedAmount", _amount(vat.tax))  # BT-117
    _el(node, "ram:TypeCode", "VAT")
    if vat.exemption_reason:
        _el(node, "ram:ExemptionReason", vat.exemption_reason)  # BT-120
    _el(node, "ram:BasisAmount", _amount(vat.taxable))  # BT-116
    _el(node, "ram:CategoryCode", vat.category.value)  # BT-118
    if vat.category is not VatCategory.OUTSIDE_SCOPE:  # BR-O-09
        _el(node, "ram:RateApplicablePercent", _decimal(vat.rate))  # BT-119


def _payment_terms(parent: etree._Element, doc: Document) -> None:
    terms = _el(parent, "ram:SpecifiedTradePaymentTerms")
    if isinstance(doc, Invoice):
        _el(terms, "ram:Description", doc.payment_terms.text)  # BT-20
        _date(terms, "ram:DueDateDateTime", doc.due_date)  # BT-9
    else:
        _el(terms, "ram:Description", f"Credit of invoice {doc.invoice_number}: refunded or set off")


def _summation(parent: etree._Element, doc: Document) -> None:
    t = doc.totals
    node = _el(parent, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")  # BG-22
    _el(node, "ram:LineTotalAmount", _amount(t.line_net))  # BT-106
    _el(node, "ram:TaxBasisTotalAmount", _amount(t.tax_exclusive))  # BT-109
    _el(node, "ram:TaxTotalAmount", _amount(t.tax), currencyID=doc.currency)  # BT-110
    if t.rounding:
        _el(node, "ram:RoundingAmount", _amount(t.rounding))  # BT-114
    _el(node, "ram:GrandTotalAmount", _amount(t.tax_inclusive))  # BT-112
    _el(node, "ram:DuePayableAmount", _amount(t.payable))  # BT-115


def _supply_period(doc: Document) -> SupplyPeriod | None:
    if isinstance(doc, Invoice):
        return doc.supply_period
    periods = [ln.supply for ln in doc.lines if ln.supply is not None]
    return SupplyPeriod.span(periods) if periods else None


def cii_xml(doc: Document) -> bytes:
    """The CII XML of ``doc`` (profile EN 16931), UTF-8 with an XML declaration."""
    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=NSMAP)
    context = _el(root, "rsm:ExchangedDocumentContext")
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", GUIDELINE)  # BT-24

    header = _el(root, "rsm:ExchangedDocument")
    _el(header, "ram:ID", doc.number)  # BT-1
    type_code = SELF_BILLED_CREDIT_TYPE if doc.self_billed else CREDIT_NOTE_TYPE
    if isinstance(doc, Invoice):
        type_code = SELF_BILLED_TYPE if doc.self_billed else INVOICE_TYPE
    _el(header, "ram:TypeCode", type_code)  # BT-3
    _date(header, "ram:IssueDateTime", doc.issue_date)  # BT-2
    notes = [doc.reason, *doc.notes] if isinstance(doc, CreditNote) else list(doc.notes)
    for note in notes:
        _el(_el(header, "ram:IncludedNote"), "ram:Content", note)  # BT-22

    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    for line in doc.lines:
        _line(transaction, line)
    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    _party(agreement, "ram:SellerTradeParty", doc.seller)
    _party(agreement, "ram:BuyerTradeParty", doc.buyer)
    delivery = _el(transaction, "ram:ApplicableHeaderTradeDelivery")
    period = _supply_period(doc)
    if period is not None:  # BT-72: the day the supply was completed
        _date(_el(delivery, "ram:ActualDeliverySupplyChainEvent"), "ram:OccurrenceDateTime", period.end)
    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    _el(settlement, "ram:InvoiceCurrencyCode", doc.currency)  # BT-5
    for vat in doc.breakdown:
        _vat(settlement, vat)
    if period is not None:
        _period(settlement, period)
    _payment_terms(settlement, doc)
    _summation(settlement, doc)
    if isinstance(doc, CreditNote):  # BG-3, 0..n (the Factur-X EN 16931 XSD: unbounded)
        preceding = [
            (doc.invoice_number, doc.invoice_date),
            *((r.number, r.issue_date) for r in doc.also_credits),
        ]
        for number, issued in preceding:
            ref = _el(settlement, "ram:InvoiceReferencedDocument")
            _el(ref, "ram:IssuerAssignedID", number)  # BT-25
            _date(ref, "ram:FormattedIssueDateTime", issued, qualified=True)  # BT-26
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
