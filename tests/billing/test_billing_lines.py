"""Invoice lines equal the CDRs to the cent (issue 14): over every tariff feature the pricing engine has, a
CDR's lines add up to its total excl. VAT, per VAT class to its components, a credit CDR negates them, and a
monthly invoice's groups add up to the invoice."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given

from billing.core.documents import DocumentError, VatCategory
from billing.core.lines import CdrComponent, Dimension, cdr_lines, group_lines, monthly_lines
from billing.core.vat import NORMAL, classify
from tests.properties.strategies import budget

from .kit import credit_of, engine_cdrs, engine_results, fleet_invoice, fleet_months, priced_cdr, simple_cdr

D = Decimal


@budget(200)
@given(engine_results())
def test_lines_equal_the_cdr_to_the_cent(result) -> None:
    cdr = priced_cdr(result, "CDR-1")
    lines = cdr_lines(cdr)
    assert sum((ln.net for ln in lines), D(0)) == result.total_cost.excl_vat
    # every priced line of the engine is one invoice line with its own amount, quantity and unit price
    priced = [ln for ln in result.lines if ln.kind == "component"]
    own = [ln for ln in lines if not ln.line_id.split(":")[-1].startswith("a")]
    assert [(x.net, abs(x.quantity), x.unit_price) for x in own] == [
        (p.amount_excl, p.quantity, p.unit_price) for p in priced
    ]
    # per VAT class, the lines carry the CDR's components (an adjustment spread over the classes)
    by_class: dict = defaultdict(lambda: D(0))
    for ln in lines:
        by_class[(ln.vat_category, ln.vat_rate)] += ln.net
        assert ln.unit_price >= 0 and ln.cdr_id == "CDR-1" and ln.signed_data_ref == "signed:CDR-1"
        assert ln.supply == cdr.supply
    expected: dict = defaultdict(lambda: D(0))
    for p in priced:
        expected[classify(p.vat, NORMAL)] += p.amount_excl
    adjustment = result.total_cost.excl_vat - sum((p.amount_excl for p in priced), D(0))
    assert sum(by_class.values(), D(0)) - sum(expected.values(), D(0)) == adjustment


@budget(100)
@given(engine_cdrs())
def test_a_credit_cdr_gives_the_same_lines_negated(cdr) -> None:
    lines, credit = cdr_lines(cdr), cdr_lines(credit_of(cdr))
    assert sum((ln.net for ln in credit), D(0)) == -cdr.total_excl
    assert [(-c.net, -c.quantity, c.unit_price, c.vat_category, c.vat_rate) for c in credit] == [
        (ln.net, ln.quantity, ln.unit_price, ln.vat_category, ln.vat_rate) for ln in lines
    ]
    assert all(c.description.startswith("Correction") for c in credit)


@budget(60)
@given(fleet_months())
def test_monthly_groups_add_up_to_the_invoice_lines(cdrs) -> None:
    lines = monthly_lines(cdrs)
    groups = group_lines(lines)
    assert sum((g.net for g in groups), D(0)) == sum((c.total_excl for c in cdrs), D(0))
    assert [g.key for g in groups] == sorted({c.group for c in cdrs if c.components})  # free: no lines
    for g in groups:
        assert g.net == sum((c.total_excl for c in cdrs if c.group == g.key), D(0))
        starts = [ln.supply.start for ln in g.lines if ln.supply]
        assert starts == sorted(starts)


def test_a_price_cap_is_split_over_the_vat_rates_and_keeps_its_sign() -> None:
    cdr = simple_cdr(
        "CAP",
        [
            (Dimension.ENERGY, "30", "9.00", "21"),
            (Dimension.FLAT, "1", "1.00", "9"),
            (Dimension.ADJUSTMENT, "1", "-2.00", None),
        ],
    )
    lines = cdr_lines(cdr)
    assert sum((ln.net for ln in lines), D(0)) == D("8.00")
    caps = [ln for ln in lines if ":a" in ln.line_id]
    assert [(ln.vat_rate, ln.net, ln.quantity, ln.unit_price) for ln in caps] == [
        (D(21), D("-1.80"), D(-1), D("1.80")),
        (D(9), D("-0.20"), D(-1), D("0.20")),
    ]


def test_tariff_vat_becomes_the_line_category() -> None:
    cdr = simple_cdr(
        "VAT",
        [
            (Dimension.ENERGY, "10", "3.00", "21"),
            (Dimension.TIME, "1", "1.00", "0"),
            (Dimension.PARKING_TIME, "1", "2.00", None),
        ],
    )
    assert [(ln.vat_category, ln.vat_rate) for ln in cdr_lines(cdr)] == [
        (VatCategory.STANDARD, D(21)),
        (VatCategory.ZERO_RATED, D(0)),
        (VatCategory.OUTSIDE_SCOPE, D(0)),
    ]


def test_a_cdr_whose_components_miss_its_total_is_refused() -> None:
    good = simple_cdr("X", [(Dimension.ENERGY, "10", "3.00", "21")])
    with pytest.raises(DocumentError, match="do not add up"):
        type(good)(**{**{f: getattr(good, f) for f in good.__slots__}, "total_excl": D("3.01")})
    with pytest.raises(DocumentError, match="unit price"):
        CdrComponent(Dimension.ENERGY, D(1), D("1.00"), D(21), None)


def test_one_invoice_per_currency() -> None:
    eur = simple_cdr("E", [(Dimension.ENERGY, "10", "3.00", "21")])
    chf = type(eur)(**{**{f: getattr(eur, f) for f in eur.__slots__}, "cdr_id": "C", "currency": "CHF"})
    with pytest.raises(DocumentError, match="one document per currency"):
        fleet_invoice([eur, chf])
