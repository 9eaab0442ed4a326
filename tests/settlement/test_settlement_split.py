"""The split: parts add up to each CDR's total to the cent; it matches an independent Decimal reference."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.money import reset_rounding, round_amount, set_rounding
from settlement.core.minor import from_minor, round_half_up, rounding_step
from settlement.core.split import split

from .testkit import CPOS, cdr_rows, dec, make_book, one_cdr_row, reference_split

BOOK = make_book()
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cdr_rows())
def test_parts_add_up_to_each_cdr_total_excl_and_incl_vat(cdrs):
    result = split(cdrs, BOOK)
    lines = result.lines
    assert set(lines["cdr_id"]) | set(result.rejected["cdr_id"]) == set(cdrs["cdr_id"])
    totals = cdrs.set_index("cdr_id")[["total_excl", "total_incl"]]
    parts = lines[lines["kind"] != "emsp_owes_cpo"].groupby("cdr_id")[["net_minor", "gross_minor"]].sum()
    owed = lines[lines["kind"] == "emsp_owes_cpo"].set_index("cdr_id")
    for cdr_id, row in parts.iterrows():
        assert row["net_minor"] == totals.loc[cdr_id, "total_excl"]
        assert row["gross_minor"] == totals.loc[cdr_id, "total_incl"]
        assert owed.loc[cdr_id, "net_minor"] == -totals.loc[cdr_id, "total_excl"]
        assert owed.loc[cdr_id, "gross_minor"] == -totals.loc[cdr_id, "total_incl"]
    # every CDR's lines sum to zero (double entry) and gross = net + vat on every line
    per_cdr = lines.groupby("cdr_id")[["net_minor", "vat_minor", "gross_minor"]].sum()
    assert (per_cdr == 0).all().all()
    assert (lines["gross_minor"] == lines["net_minor"] + lines["vat_minor"]).all()


@SETTINGS
@given(cdr_rows())
def test_split_matches_scalar_decimal_reference(cdrs):
    result = split(cdrs, BOOK)
    rejected = dict(zip(result.rejected["cdr_id"], result.rejected["reason"], strict=True))
    for row in cdrs.to_dict("records"):
        expected = reference_split(row, BOOK)
        if isinstance(expected, str):
            assert rejected.get(row["cdr_id"]) == expected
            continue
        assert row["cdr_id"] not in rejected
        got = result.lines[result.lines["cdr_id"] == row["cdr_id"]]
        assert sorted(got["kind"].astype(str)) == sorted(expected)
        for line in got.itertuples(index=False):
            net, vat, ref = expected[str(line.kind)]
            assert from_minor(line.net_minor, row["currency"]) == net, (line.kind, row)
            assert from_minor(line.vat_minor, row["currency"]) == vat, (line.kind, row)
            assert f"{line.agreement_id}@v{line.agreement_version}" == ref


@SETTINGS
@given(cdr_rows(credit_share=False))
def test_credit_cdr_mirrors_its_original_to_the_cent(cdrs):
    credits = cdrs.copy()
    for col in [c for c in cdrs.columns if c.endswith(("_excl", "_incl"))]:
        credits[col] = -cdrs[col]
    credits["is_credit"] = True
    credits["credit_of"] = cdrs["cdr_id"]
    credits["cdr_id"] = cdrs["cdr_id"] + "-CR"
    both = split(pd.concat([cdrs, credits], ignore_index=True), BOOK).lines
    orig = both[~both["is_adjustment"]].sort_values(["cdr_id", "line_no"])
    cred = both[both["is_adjustment"]].sort_values(["cdr_id", "line_no"])
    assert len(orig) == len(cred)
    assert (orig["net_minor"].to_numpy() == -cred["net_minor"].to_numpy()).all()
    assert (orig["vat_minor"].to_numpy() == -cred["vat_minor"].to_numpy()).all()
    assert (cred["adjusts_cdr_id"] == cred["cdr_id"].str.removesuffix("-CR")).all()


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 10**15),
    st.integers(1, 10**12),
    st.sampled_from(["EUR", "JPY", "BHD"]),
)
def test_vectorised_rounding_equals_money_round_amount(num, den, currency):
    got = round_half_up(np.array([num]), den, rounding_step(currency))[0]
    expected = round_amount(
        Decimal(num)
        / Decimal(den)
        / Decimal(10) ** (3 if currency == "BHD" else 0 if currency == "JPY" else 2),
        currency,
    )
    assert from_minor(int(got), currency) == expected


def test_rounding_override_chf_005_is_respected():
    set_rounding("CHF", "0.05")
    try:
        assert rounding_step("CHF") == 5
        got = round_half_up(np.array([1234, 1225, 1224]), 100, 5)  # 12.34 12.25 12.24 cents / 100
        assert [from_minor(int(v), "CHF") for v in got] == [
            round_amount(Decimal(x) / 10000, "CHF") for x in (1234, 1225, 1224)
        ]
    finally:
        reset_rounding()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"total_excl": -5, "total_incl": -6, "energy_excl": 0, "energy_incl": 0}, "bad_sign"),
        ({"total_incl": 900}, "negative_vat"),
        # below the components excl. VAT, above them incl. VAT (a capped total is fine: test_settlement_capped_cdrs)
        ({"energy_excl": 1100, "energy_incl": 1100}, "total_contradicts_components"),
        ({"emsp": "XX*NOPE"}, "no_roaming_agreement"),
        ({"currency": "USD"}, "no_hub_fee_agreement"),
        ({"country": "FR"}, "no_hub_vat_rate"),
    ],
)
def test_rejections_name_their_reason(change, reason):
    result = split(one_cdr_row(**change), BOOK)
    assert list(result.rejected["reason"]) == [reason]
    assert result.lines.empty


def test_site_host_currency_mismatch_is_rejected():
    frame = one_cdr_row(cpo=CPOS[1], location_id="LOC2", currency="BHD", country="DE")
    assert list(split(frame, BOOK).rejected["reason"]) == ["site_host_currency_mismatch"]


def test_worked_example_hub_minimum_and_host_share():
    # 10.00 EUR net, 21% VAT; CPA-specific hub fee 1% = 0.10; host 12.5% of energy 10.00 = 1.25, VAT 0.2625
    lines = split(one_cdr_row(location_id="LOC1"), BOOK).lines.set_index("kind")
    assert dec(lines.loc["hub_fee", "net_minor"], "EUR") == Decimal("0.10")
    assert dec(lines.loc["hub_fee", "vat_minor"], "EUR") == Decimal("0.02")
    assert dec(lines.loc["site_host_share", "net_minor"], "EUR") == Decimal("1.25")
    assert dec(lines.loc["site_host_share", "vat_minor"], "EUR") == Decimal("0.26")
    # the remainder (and so the odd cent) stays with the CPO
    assert dec(lines.loc["cpo_retained", "net_minor"], "EUR") == Decimal("8.65")
    assert dec(lines.loc["cpo_retained", "vat_minor"], "EUR") == Decimal("1.82")


def test_naive_timestamps_are_refused():
    frame = one_cdr_row()
    frame["end_date_time"] = pd.Timestamp("2026-10-05T12:00")
    with pytest.raises(ValueError, match="naive"):
        split(frame, BOOK)
