"""Issuers and fee lines: an issuer's VAT situation gives each buyer's treatment; a monthly invoice carries
fees next to its sessions and stays consistent (the sessions' lines still equal the CDRs)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from billing.core.documents import DocumentError, PaymentTerms, SupplyPeriod, VatCategory
from billing.core.invoices import monthly_invoice
from billing.core.issuers import Issuer
from billing.core.lines import Dimension, fee_line
from billing.core.numbering import Series
from billing.core.vat import TreatmentKind

from .kit import CONSUMER, FLEET, ISSUE, SELLER, T0, simple_cdr

D = Decimal
ISSUER = Issuer(
    "CPO-1", SELLER, "eur", Series("INV"), Series("CN"), PaymentTerms(30), reverse_charge_allowed=True
)


def test_an_issuer_gives_each_buyer_its_treatment() -> None:
    assert ISSUER.currency == "EUR"
    assert ISSUER.treatment(FLEET).kind is TreatmentKind.REVERSE_CHARGE
    assert ISSUER.treatment(CONSUMER).kind is TreatmentKind.NORMAL
    exempt = replace(ISSUER, exemption="Small business scheme")
    assert exempt.treatment(FLEET).kind is TreatmentKind.EXEMPT


def test_an_issuer_is_refused_without_two_series_a_vat_id_or_a_currency_en16931_carries() -> None:
    with pytest.raises(DocumentError, match="two series"):
        replace(ISSUER, credit_series=Series("INV", yearly=False))
    with pytest.raises(DocumentError, match="BR-S-02"):
        replace(ISSUER, identity=replace(SELLER, vat_id=None))
    with pytest.raises(ValueError, match="at most 2"):
        replace(ISSUER, currency="KWD")


def test_a_monthly_invoice_carries_fees_after_its_sessions() -> None:
    cdr = simple_cdr("S1", [(Dimension.ENERGY, "20", "6.00", "21")], group=("Ada", "NL-AB-12"))
    month = SupplyPeriod(T0.replace(day=1, hour=0), T0.replace(day=30, hour=23))
    fees = [
        fee_line("plan", "Fleet plan, June", D("9.99"), "EUR", D(21), supply=month),
        fee_line("dunning", "Reminder fee", D("5.00"), "EUR", None),
    ]
    invoice = monthly_invoice(
        [cdr],
        series="INV",
        number="INV-2026-000001",
        issue_date=ISSUE,
        seller=SELLER,
        buyer=FLEET,
        terms=ISSUER.terms,
        treatment=ISSUER.treatment(CONSUMER),
        supply_period=month,
        fees=fees,
    )
    assert [ln.line_id for ln in invoice.lines] == ["S1:1", "plan", "dunning"]
    assert [(b.category, b.taxable, b.tax) for b in invoice.breakdown] == [
        (VatCategory.STANDARD, D("15.99"), D("3.36")),
        (VatCategory.OUTSIDE_SCOPE, D("5.00"), D("0.00")),
    ]
    assert invoice.totals.payable == D("24.35")
    assert sum((ln.net for ln in invoice.lines if ln.cdr_id == "S1"), D(0)) == cdr.total_excl
    with pytest.raises(DocumentError, match="cover"):
        replace(invoice, supply_period=replace(month, end=T0 + timedelta(hours=2)))
    with pytest.raises(DocumentError, match="positive rounded"):
        fee_line("bad", "Fee", D("-1.00"), "EUR", D(21))
