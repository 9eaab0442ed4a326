"""Property g (issue 12, item 6): settlement lines add up to the CDR totals.

CDRs priced by the engine (caps by max_price included, credits, three currencies) are split with the
agreement book of ``tests/settlement/testkit``. Per accepted CDR the CPO's, hub's and site host's lines add up
to the CDR's total (net and VAT) and the eMSP's line is minus that total; per eMSP and currency the eMSP's lines
are minus the sum of its accepted CDRs' totals.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import given

from settlement.core.minor import from_minor
from settlement.core.split import split
from tests.settlement.testkit import make_book

from .settlement_cdrs import PricedCdr, cdr_table, priced_cdrs, vat
from .strategies import budget

BOOK = make_book()


@budget(60)
@given(priced_cdrs())
def test_settlement_lines_equal_cdr_totals(cdrs: list[PricedCdr]) -> None:
    """Issue 12 item 6g (S1, S3): per accepted CDR, cpo_retained + hub_fee + site_host_share == the CDR's total
    excl. VAT and its VAT, emsp_owes_cpo == minus both; per (eMSP, currency) the eMSP's lines == minus the sum
    of its accepted CDRs' totals (excl. VAT and VAT)."""
    result = split(cdr_table(cdrs), BOOK)
    rows = {c.row["cdr_id"]: c.row for c in cdrs}
    lines = result.lines
    accepted = set(lines["cdr_id"].astype(str))
    assert accepted.isdisjoint(set(result.rejected["cdr_id"].astype(str)))
    assert accepted | set(result.rejected["cdr_id"].astype(str)) == set(rows)
    per_cdr: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    per_emsp: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for line in lines.itertuples():
        cur = str(line.currency)
        net, tax = from_minor(int(line.net_minor), cur), from_minor(int(line.vat_minor), cur)
        side = "emsp" if line.kind == "emsp_owes_cpo" else "cpo_side"
        acc = per_cdr[(str(line.cdr_id), side)]
        acc[0] += net
        acc[1] += tax
        if line.kind == "emsp_owes_cpo":
            e = per_emsp[(str(line.party), cur)]
            e[0] += net
            e[1] += tax
    expected_emsp: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for cdr_id in accepted:
        row = rows[cdr_id]
        total = [Decimal(row["total_cost_excl_vat"]), vat(row)]
        assert per_cdr[(cdr_id, "cpo_side")] == total, cdr_id
        assert per_cdr[(cdr_id, "emsp")] == [-total[0], -total[1]], cdr_id
        e = expected_emsp[(row["emsp"], row["currency"])]
        e[0] -= total[0]
        e[1] -= total[1]
    assert dict(per_emsp) == dict(expected_emsp)
