"""Property f (issue 12, item 6): every priced CDR settles, or is rejected for a documented reason that the
exports list.

Months are run in order, each run at its closing instant over the CDRs created by then, and closed; CDRs are
priced by the engine (capped ones by max_price included), some late (created after their month closed), some
credited, some without an agreement (the book's roaming agreement of BE*CPC starts on 2026-10-10, some
country has no hub VAT rate). Rejections of a closing run are carried into the next runs (S2).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pandas as pd
from hypothesis import event, given

from settlement.core.accounting_periods import parse_period
from settlement.core.canonical_exports import rejected_csv
from settlement.core.run import settle
from settlement.core.split import REJECT_REASONS
from tests.settlement.testkit import make_book

from .settlement_cdrs import PricedCdr, cdr_table, priced_cdrs
from .strategies import budget

BOOK = make_book()
MONTHS = ("2026-09", "2026-10", "2026-11", "2026-12", "2027-01", "2027-02", "2027-03")


def close_of(month: str) -> datetime:
    return parse_period(month).end + timedelta(days=3)


@budget(20)
@given(priced_cdrs(n_max=16))
def test_every_priced_cdr_settles_once_or_is_listed_as_rejected(cdrs: list[PricedCdr]) -> None:
    """Issue 12 item 6f (S1, S2): after the months are run and closed in order, each CDR (created before the
    last close) is in exactly one run's lines, or else in the last run's rejected.csv with a reason of
    REJECT_REASONS; never both; a closed month replayed gives the hash of its closing run."""
    table = cdr_table(cdrs)
    created = pd.to_datetime(table["created_at"], utc=True)
    closes: dict[str, datetime] = {}
    carried = pd.DataFrame({"cdr_id": pd.Series([], dtype=object), "period": pd.Series([], dtype=object)})
    settled: Counter[str] = Counter()
    hashes: dict[str, str] = {}
    last = None
    for month in MONTHS:
        at = close_of(month)
        inputs = table[created < pd.Timestamp(at)].reset_index(drop=True)
        run = settle(inputs, BOOK, month, closes, carried=carried)
        settled.update(set(run.lines["cdr_id"].astype(str)))
        hashes[month] = run.summary.content_hash
        if len(run.rejected):
            assert set(run.rejected["reason"].astype(str)) <= set(REJECT_REASONS)
            new = pd.DataFrame({"cdr_id": run.rejected["cdr_id"].astype(str), "period": month})
            carried = pd.concat([carried, new], ignore_index=True)
        closes[month] = at
        last = run
    assert last is not None
    final_rejected = set(last.rejected["cdr_id"].astype(str))
    listed = rejected_csv(last.rejected).decode()
    everyone = set(table.loc[created < pd.Timestamp(close_of(MONTHS[-1])), "cdr_id"].astype(str))
    for cdr_id in sorted(everyone):
        assert settled[cdr_id] <= 1, f"{cdr_id} settled twice"
        if settled[cdr_id] == 0:
            assert cdr_id in final_rejected and cdr_id in listed, f"{cdr_id} neither settled nor listed"
        else:
            assert cdr_id not in final_rejected, f"{cdr_id} settled and rejected"
    event(f"rejected at the end: {min(len(final_rejected), 3)}+")
    for month in MONTHS[:3]:
        prior = {k: v for k, v in closes.items() if parse_period(k) < parse_period(month)}
        inputs = table[created < pd.Timestamp(close_of(month))].reset_index(drop=True)
        replay = settle(inputs, BOOK, month, prior, replay=True, carried=carried)  # only earlier months count
        assert replay.summary.content_hash == hashes[month], month
