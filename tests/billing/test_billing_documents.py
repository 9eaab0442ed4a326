"""The documents refuse what an EN 16931 invoice may not be: each rule has its refusal, named."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from billing.core.documents import Address, DocumentError, Identity, InvoiceLine, Unit, VatCategory
from billing.core.lines import Dimension
from billing.core.vat import REVERSE_CHARGE_NOTE, breakdown, totals

from .kit import CONSUMER, SELLER, consumer_invoice, fleet_invoice, simple_cdr

D = Decimal
CDR = simple_cdr(
    "DOC", [(Dimension.ENERGY, "10", "3.00", "21"), (Dimension.FLAT, "1", "0.50", "21")], total_incl="4.24"
)


def test_an_issued_invoice_is_complete_and_frozen() -> None:
    invoice = consumer_invoice(CDR)
    assert invoice.due_date.toordinal() - invoice.issue_date.toordinal() == 14
    assert invoice.supply_period == CDR.supply
    assert all(ln.cdr_id == "DOC" and ln.session_ref == "S-DOC" for ln in invoice.lines)
    with pytest.raises(AttributeError):
        invoice.number = "INV-2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (
            lambda i: replace(i, breakdown=(replace(i.breakdown[0], tax=i.breakdown[0].tax + D("0.01")),)),
            "BR-CO-17",
        ),
        (lambda i: replace(i, breakdown=(replace(i.breakdown[0], taxable=D("3.49")),)), "BR-S-08"),
        (
            lambda i: replace(
                i,
                totals=replace(
                    i.totals,
                    tax=i.totals.tax + D("0.01"),
                    tax_inclusive=i.totals.tax_inclusive + D("0.01"),
                    payable=i.totals.payable + D("0.01"),
                ),
            ),
            "BR-CO-14",
        ),
        (lambda i: replace(i, lines=i.lines[:1]), "BR-S-08"),
        (lambda i: replace(i, lines=()), "BR-16"),
        (lambda i: replace(i, lines=(i.lines[0], i.lines[0])), "unique"),
        (lambda i: replace(i, seller=replace(SELLER, vat_id=None)), "BR-S-02"),
        (
            lambda i: replace(
                i,
                due_date=i.issue_date.replace(day=1)
                if i.issue_date.day > 1
                else i.issue_date.replace(month=i.issue_date.month - 1),
            ),
            "due date",
        ),
        (lambda i: replace(i, supply_period=replace(i.supply_period, end=i.supply_period.start)), "cover"),
    ],
)
def test_an_inconsistent_invoice_is_refused(change, rule) -> None:
    with pytest.raises(DocumentError, match=rule):
        change(consumer_invoice(CDR))


def test_a_line_in_another_currency_or_with_a_negative_price_is_refused() -> None:
    invoice = consumer_invoice(CDR)
    with pytest.raises(DocumentError, match="one currency"):
        replace(invoice, lines=(*invoice.lines[:1], replace(invoice.lines[1], currency="CHF")))
    with pytest.raises(DocumentError, match="BR-27"):
        replace(invoice.lines[0], unit_price=D("-0.30"))
    with pytest.raises(DocumentError, match="sign"):
        replace(invoice.lines[0], quantity=D("-10"))
    with pytest.raises(DocumentError, match="rounded"):
        replace(invoice.lines[0], net=D("3.001"))
    with pytest.raises(DocumentError, match="BR-S-05"):
        replace(invoice.lines[0], vat_rate=D(0))
    with pytest.raises(ValueError, match="at most 2"):
        replace(invoice.lines[0], currency="BHD")


def test_reverse_charge_needs_both_vat_ids() -> None:
    line = InvoiceLine(
        "L1", "Energy", D(10), Unit.KWH, D("0.30"), D("3.00"), "EUR", VatCategory.REVERSE_CHARGE, D(0)
    )
    invoice = fleet_invoice([CDR])
    with pytest.raises(DocumentError, match="BR-AE-02"):
        vat = breakdown([line], "EUR")
        replace(
            invoice,
            buyer=CONSUMER,
            lines=(replace(line, supply=None),),
            breakdown=vat,
            totals=totals([line], vat, "EUR"),
            notes=(REVERSE_CHARGE_NOTE,),
        )


def test_identities_validate_country_and_vat_id() -> None:
    assert Identity("A", Address("s", "1", "c", "gr"), vat_id="el 123 456 789").vat_id == "EL123456789"
    with pytest.raises(DocumentError, match="ISO 3166"):
        Address("s", "1", "c", "XX")
    with pytest.raises(DocumentError, match="BR-CO-09"):
        Identity("A", Address("s", "1", "c", "NL"), vat_id="QQ123456789")
    with pytest.raises(DocumentError, match="legal name"):
        Identity(" ", Address("s", "1", "c", "NL"))
