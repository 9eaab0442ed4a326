"""Statements and netting: every party's total is preserved; currencies never mix; money is conserved."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from settlement.core.netting import bilateral, check_transfers, multilateral, positions
from settlement.core.split import split
from settlement.core.statements import build_statement, ledger, parties, statement_totals

from .testkit import cdr_rows, dec, make_book

BOOK = make_book()
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cdr_rows(n_max=30))
def test_netting_preserves_each_partys_total(cdrs):
    lines = split(cdrs, BOOK).lines
    own = statement_totals(lines).set_index(["currency", "party"])["gross_minor"]
    pos = positions(lines).set_index(["currency", "party"])["position_minor"]
    assert own.sort_index().to_dict() == pos.sort_index().to_dict()
    for transfers in (bilateral(lines), multilateral(lines), multilateral(lines, "HUB")):
        assert check_transfers(lines, transfers) == []
        assert (transfers["amount_minor"] > 0).all()
        # independent recomputation: received - paid per (currency, party)
        moved: dict = {}
        for t in transfers.itertuples(index=False):
            moved[(t.currency, t.payer)] = moved.get((t.currency, t.payer), 0) - t.amount_minor
            moved[(t.currency, t.payee)] = moved.get((t.currency, t.payee), 0) + t.amount_minor
        assert {k: v for k, v in moved.items() if v} == {k: v for k, v in own.to_dict().items() if v}


@SETTINGS
@given(cdr_rows(n_max=30))
def test_no_money_appears_or_disappears_across_currencies(cdrs):
    result = split(cdrs, BOOK)
    lines = result.lines
    accepted = cdrs[~cdrs["cdr_id"].isin(result.rejected["cdr_id"])]
    # per currency: all positions sum to zero, and what eMSPs owe equals the accepted CDR totals
    pos = positions(lines)
    for _currency, group in pos.groupby("currency"):
        assert group["position_minor"].sum() == 0
        assert group["position_net_minor"].sum() == 0
        assert group["position_vat_minor"].sum() == 0
    owed = lines[lines["kind"] == "emsp_owes_cpo"].groupby(lines["currency"].astype(str))["gross_minor"].sum()
    expected = accepted.groupby("currency")["total_incl"].sum()
    assert {k: -int(v) for k, v in owed.items()} == {k: int(v) for k, v in expected.items()}
    # every statement keeps its currencies apart and matches the party's split lines
    totals = statement_totals(lines).set_index(["party", "currency"])
    for party in parties(lines):
        st = build_statement(lines, party)
        assert [s.currency for s in st.sections] == sorted({s.currency for s in st.sections})
        for s in st.sections:
            assert (s.entries["currency"] == s.currency).all()
            row = totals.loc[(party, s.currency)]
            assert s.net == dec(row["net_minor"], s.currency)
            assert s.vat == dec(row["vat_minor"], s.currency)
            assert s.gross == s.net + s.vat


def test_ledger_cpo_sees_revenue_and_costs():
    from .testkit import one_cdr_row

    lines = split(one_cdr_row(location_id="LOC1"), BOOK).lines
    cpo = ledger(lines)
    cpo = cpo[cpo["party"] == "NL*CPA"].set_index("kind")["gross_minor"]
    assert cpo["emsp_owes_cpo"] == 1210
    assert cpo["hub_fee"] < 0 and cpo["site_host_share"] < 0
    retained = lines.loc[lines["kind"] == "cpo_retained", "gross_minor"].item()
    assert cpo.sum() == retained


def test_check_transfers_detects_a_wrong_transfer():
    from .testkit import one_cdr_row

    lines = split(one_cdr_row(), BOOK).lines
    transfers = bilateral(lines)
    broken = transfers.copy()
    broken.loc[0, "amount_minor"] += 1
    assert check_transfers(lines, transfers) == []
    assert check_transfers(lines, broken) != []


def test_multilateral_with_clearing_party_routes_everything_through_it():
    from .testkit import one_cdr_row

    frames = [one_cdr_row(cdr_id=f"X{i}", location_id="LOC1") for i in range(3)]
    lines = split(pd.concat(frames, ignore_index=True), BOOK).lines
    transfers = multilateral(lines, "HUB")
    assert ((transfers["payer"] == "HUB") | (transfers["payee"] == "HUB")).all()


@pytest.mark.parametrize("method", ["bilateral", "multilateral"])
def test_empty_lines_give_no_transfers(method):
    lines = split(_empty(), BOOK).lines
    transfers = bilateral(lines) if method == "bilateral" else multilateral(lines)
    assert transfers.empty


def _empty():
    from .testkit import one_cdr_row

    return one_cdr_row().iloc[0:0]
