"""VAT as EN 16931 requires: BR-CO-17 per category and rate, the totals BT-106..BT-115, reverse charge and its
wording; and which figure is authoritative when invoice VAT and the CDRs' incl.-VAT totals differ by cents
(docs/billing.md: per-session consumer invoice -> the CDR's price is due, the cents as BT-114; monthly -> the
invoice's own total)."""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.core.documents import VatCategory
from billing.core.lines import Dimension
from billing.core.vat import (
    REVERSE_CHARGE_NOTE,
    TreatmentKind,
    VatTreatment,
    reconcile,
    treatment_for,
)
from tests.properties.strategies import budget

from .kit import (
    CONSUMER,
    FLEET,
    SELLER,
    consumer_invoice,
    engine_cdrs,
    fleet_invoice,
    fleet_months,
    simple_cdr,
    synthetic_months,
)

D = Decimal
CENT = D("0.01")


def br_co_17(taxable: Decimal, rate: Decimal) -> Decimal:
    """BR-CO-17 written out independently of kernel.money: half up to two decimals."""
    return (taxable * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def assert_en16931(invoice) -> None:
    """BR-CO-10/13/14/15/16/17, BR-x-08 and one breakdown per (category, rate), recomputed from the lines."""
    keys = sorted({(ln.vat_category, ln.vat_rate) for ln in invoice.lines})
    assert sorted(b.key for b in invoice.breakdown) == keys
    for b in invoice.breakdown:
        assert b.taxable == sum(
            (ln.net for ln in invoice.lines if (ln.vat_category, ln.vat_rate) == b.key), D(0)
        )
        assert b.tax == br_co_17(b.taxable, b.rate)
        if b.category is not VatCategory.STANDARD:
            assert b.rate == 0 and b.tax == 0
    t = invoice.totals
    assert t.line_net == sum((ln.net for ln in invoice.lines), D(0)) == t.tax_exclusive
    assert t.tax == sum((b.tax for b in invoice.breakdown), D(0))
    assert t.tax_inclusive == t.tax_exclusive + t.tax
    assert t.payable == t.tax_inclusive + t.rounding


@budget(150)
@given(engine_cdrs())
def test_a_consumers_session_invoice_follows_en16931_and_charges_the_cdrs_price(cdr) -> None:
    if not cdr.components:
        return  # a free session has no line to invoice
    invoice = consumer_invoice(cdr)
    assert_en16931(invoice)
    assert invoice.totals.tax_exclusive == cdr.total_excl
    gap = cdr.total_incl - invoice.totals.tax_inclusive
    if abs(gap) <= max(len(invoice.lines), 1) * CENT:
        assert invoice.totals.payable == cdr.total_incl and invoice.totals.rounding == gap
    else:  # a min/max incl.-VAT bound out of line with the VAT: not rounding, the invoice total is due
        assert invoice.totals.payable == invoice.totals.tax_inclusive and invoice.totals.rounding == 0


@budget(60)
@given(fleet_months())
def test_a_monthly_invoice_is_due_at_its_own_total(cdrs) -> None:
    if not any(c.components for c in cdrs):
        return
    invoice = fleet_invoice(cdrs)
    assert_en16931(invoice)
    assert invoice.totals.rounding == 0 and invoice.totals.payable == invoice.totals.tax_inclusive
    assert invoice.totals.tax_exclusive == sum((c.total_excl for c in cdrs), D(0))
    rec = reconcile([c.total_incl for c in cdrs], invoice.totals)
    assert rec.difference == sum((c.total_incl for c in cdrs), D(0)) - invoice.totals.tax_inclusive


# Two lines at 21 %, each exactly 0.0541 excl.: the CDR rounds each line with VAT (0.065461 -> 0.07), the
# invoice rounds VAT once over the rate (0.10 x 21 % = 0.021 -> 0.02). CDR incl. 0.14, invoice 0.12.
CENTS_APART = simple_cdr(
    "CENTS",
    [(Dimension.ENERGY, "0.18", "0.05", "21"), (Dimension.TIME, "0.05", "0.05", "21")],
    total_incl="0.14",
)


def test_per_session_consumer_invoice_charges_the_cdr_price_with_a_rounding_amount() -> None:
    invoice = consumer_invoice(CENTS_APART)
    assert [(b.taxable, b.tax) for b in invoice.breakdown] == [(D("0.10"), D("0.02"))]
    assert invoice.totals.tax_inclusive == D("0.12")
    assert invoice.totals.rounding == D("0.02") and invoice.totals.payable == D("0.14")


def test_monthly_invoice_vat_is_per_rate_and_the_cdr_difference_is_reported() -> None:
    second = replace(
        CENTS_APART,
        cdr_id="CENTS-2",
        start=CENTS_APART.end,
        end=CENTS_APART.end + (CENTS_APART.end - CENTS_APART.start),
    )
    invoice = fleet_invoice([CENTS_APART, second])
    assert [(b.taxable, b.tax) for b in invoice.breakdown] == [(D("0.20"), D("0.04"))]
    assert invoice.totals.payable == D("0.24") and invoice.totals.rounding == 0
    assert reconcile([D("0.14"), D("0.14")], invoice.totals).difference == D("0.04")


def test_a_price_out_of_line_with_its_vat_is_not_rounding() -> None:
    capped = simple_cdr("CAPPED", [(Dimension.ENERGY, "40", "10.00", "21")], total_incl="12.50")
    invoice = consumer_invoice(capped)
    assert invoice.totals.tax_inclusive == D("12.10")
    assert invoice.totals.rounding == 0 and invoice.totals.payable == D("12.10")


def test_reverse_charge_between_eu_businesses_with_vat_ids() -> None:
    treatment = treatment_for(SELLER, FLEET, reverse_charge_allowed=True)
    assert treatment.kind is TreatmentKind.REVERSE_CHARGE
    invoice = fleet_invoice([CENTS_APART], treatment)
    assert_en16931(invoice)
    assert [(b.category, b.rate, b.tax, b.exemption_reason) for b in invoice.breakdown] == [
        (VatCategory.REVERSE_CHARGE, D(0), D("0.00"), REVERSE_CHARGE_NOTE)
    ]
    assert REVERSE_CHARGE_NOTE in invoice.notes and invoice.totals.payable == D("0.10")


def test_reverse_charge_needs_a_business_abroad_in_the_eu_with_a_vat_id_and_the_issuers_consent() -> None:
    assert treatment_for(SELLER, FLEET).kind is TreatmentKind.NORMAL  # the issuer did not allow it
    for buyer in (
        CONSUMER,
        replace(FLEET, vat_id=None),
        replace(FLEET, address=replace(FLEET.address, country="NL"), vat_id="NL999999999B01"),
        replace(FLEET, address=replace(FLEET.address, country="CH"), vat_id="CHE123456789"),
    ):
        assert treatment_for(SELLER, buyer, reverse_charge_allowed=True).kind is TreatmentKind.NORMAL, buyer


def test_an_exempt_issuer_invoices_every_line_exempt_with_its_reason() -> None:
    treatment = treatment_for(SELLER, CONSUMER, exemption="Small business scheme, no VAT charged")
    invoice = fleet_invoice([CENTS_APART], treatment)
    assert [(b.category, b.tax, b.exemption_reason) for b in invoice.breakdown] == [
        (VatCategory.EXEMPT, D("0.00"), "Small business scheme, no VAT charged")
    ]
    assert treatment == VatTreatment(TreatmentKind.EXEMPT, "Small business scheme, no VAT charged")


@budget(200)
@given(synthetic_months(), st.sampled_from(["normal", "reverse", "exempt"]))
def test_every_rate_and_treatment_gives_an_en16931_consistent_invoice(cdrs, kind) -> None:
    treatment = {
        "normal": VatTreatment(),
        "reverse": treatment_for(SELLER, FLEET, reverse_charge_allowed=True),
        "exempt": VatTreatment(TreatmentKind.EXEMPT, "exempt"),
    }[kind]
    invoice = fleet_invoice(cdrs, treatment)
    assert_en16931(invoice)
    assert invoice.totals.tax_exclusive == sum((c.total_excl for c in cdrs), D(0))
    categories = {b.category for b in invoice.breakdown}
    taxed = {
        "normal": {VatCategory.STANDARD, VatCategory.ZERO_RATED},
        "reverse": {VatCategory.REVERSE_CHARGE},
    }
    assert categories <= taxed.get(kind, {VatCategory.EXEMPT}) | {VatCategory.OUTSIDE_SCOPE}
    assert (REVERSE_CHARGE_NOTE in invoice.notes) == (VatCategory.REVERSE_CHARGE in categories)
    if kind != "normal":
        assert invoice.totals.tax == 0
