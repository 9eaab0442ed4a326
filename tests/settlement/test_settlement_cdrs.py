"""Decimal CDR rows -> minor units: exact or refused; credits negative."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from kernel.money import MoneyError
from settlement.core.cdrs import prepare_cdrs, with_decimals
from settlement.core.explain import explain_cdr
from settlement.core.split import split

from .testkit import make_book


def _decimal_rows(**kw):
    row = {
        "cdr_id": "D1",
        "cpo": "NL*CPA",
        "emsp": "NL*MSA",
        "location_id": "LOC1",
        "country": "NL",
        "currency": "eur",
        "end_date_time": pd.Timestamp("2026-10-05T12:00Z"),
        "total_energy": Decimal("12.345"),
        "total_cost_excl_vat": Decimal("4.10"),
        "total_cost_incl_vat": Decimal("4.96"),
        "total_energy_cost_excl_vat": Decimal("3.60"),
        "total_energy_cost_incl_vat": Decimal("4.36"),
        "total_fixed_cost_excl_vat": "0.50",
        "total_fixed_cost_incl_vat": "0.60",
    }
    row.update(kw)
    return pd.DataFrame([row])


def test_prepare_converts_exactly():
    minor = prepare_cdrs(_decimal_rows())
    assert minor.loc[0, "currency"] == "EUR"
    assert minor.loc[0, "energy_micro_kwh"] == 12_345_000
    assert (minor.loc[0, "total_excl"], minor.loc[0, "total_incl"]) == (410, 496)
    assert (minor.loc[0, "fixed_excl"], minor.loc[0, "time_excl"]) == (50, 0)
    lines = with_decimals(split(minor, make_book()).lines)
    assert lines.loc[lines["kind"] == "emsp_owes_cpo", "gross"].item() == Decimal("-4.96")


def test_prepare_refuses_inexact_amounts_and_floats():
    with pytest.raises(MoneyError):
        prepare_cdrs(_decimal_rows(total_cost_excl_vat=Decimal("4.105")))
    with pytest.raises(MoneyError):
        prepare_cdrs(_decimal_rows(total_cost_excl_vat=4.10))
    with pytest.raises(ValueError):
        prepare_cdrs(_decimal_rows(total_energy=Decimal("1.2345678")))


def test_prepare_makes_credit_amounts_negative():
    minor = prepare_cdrs(_decimal_rows(is_credit=True, credit_of="D0"))
    assert minor.loc[0, "total_incl"] == -496 and minor.loc[0, "energy_excl"] == -360
    assert minor.loc[0, "credit_of"] == "D0"


def test_explain_shows_lines_and_rejection():
    minor = prepare_cdrs(_decimal_rows())
    out = explain_cdr(minor, make_book(), "D1")
    assert out["total"] == {"net": "4.10", "vat": "0.86", "gross": "4.96"}
    assert [line["kind"] for line in out["lines"]] == [
        "emsp_owes_cpo",
        "cpo_retained",
        "hub_fee",
        "site_host_share",
    ]
    rejected = explain_cdr(prepare_cdrs(_decimal_rows(country="FR")), make_book(), "D1")
    assert rejected["rejected"] == "no_hub_vat_rate"
    with pytest.raises(KeyError):
        explain_cdr(minor, make_book(), "nope")
