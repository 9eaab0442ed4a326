"""Periods, late CDRs, credit CDRs, closed periods and the run entry point."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settlement.core.accounting_periods import ClosedPeriodError, closed_until, parse_period, period_of
from settlement.core.run import settle

from .testkit import cdr_rows, make_book, one_cdr_row

BOOK = make_book()
CLOSE_OCT = {"2026-10": datetime(2026, 11, 5, 12, 0, tzinfo=UTC)}


def test_parse_period_is_half_open_utc_month():
    p = parse_period("2026-10")
    assert (p.start, p.end) == (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert parse_period("2026-12").end == datetime(2027, 1, 1, tzinfo=UTC)
    assert p.contains(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC))
    assert not p.contains(datetime(2026, 11, 1, tzinfo=UTC))
    assert period_of(datetime(2026, 11, 1, tzinfo=UTC)).key == "2026-11"
    assert closed_until(CLOSE_OCT) == datetime(2026, 11, 1, tzinfo=UTC)
    for bad in ("2026-13", "2026-1", "26-10", "x"):
        with pytest.raises(ValueError):
            parse_period(bad)


def _on_time_and_late():
    on_time = one_cdr_row(cdr_id="ON", created_at=pd.Timestamp("2026-10-06T00:00Z"))
    late = one_cdr_row(cdr_id="LATE", created_at=pd.Timestamp("2026-11-20T00:00Z"))
    return on_time, late


def test_late_cdr_becomes_adjustment_in_next_open_period_and_closed_period_is_not_rewritten():
    on_time, late = _on_time_and_late()
    before = settle(on_time, BOOK, "2026-10")  # October run before the close
    everything = pd.concat([on_time, late], ignore_index=True)
    with pytest.raises(ClosedPeriodError):
        settle(everything, BOOK, "2026-10", CLOSE_OCT)
    replay = settle(everything, BOOK, "2026-10", CLOSE_OCT, replay=True)
    assert replay.summary.content_hash == before.summary.content_hash
    assert set(replay.lines["cdr_id"]) == {"ON"}
    november = settle(everything, BOOK, "2026-11", CLOSE_OCT)
    assert set(november.lines["cdr_id"]) == {"LATE"}
    assert november.lines["is_adjustment"].all()
    assert set(november.lines["adjusts_period"].astype(str)) == {"2026-10"}
    assert set(november.lines["service_period"].astype(str)) == {"2026-10"}
    assert november.summary.adjustments == 1


def test_late_cdr_skips_every_period_closed_before_it_arrived():
    closes = {**CLOSE_OCT, "2026-11": datetime(2026, 12, 3, tzinfo=UTC)}
    late = one_cdr_row(cdr_id="VERY-LATE", created_at=pd.Timestamp("2026-12-10T00:00Z"))
    assert settle(late, BOOK, "2026-11", closes, replay=True).lines.empty
    dec_run = settle(late, BOOK, "2026-12", closes)
    assert set(dec_run.lines["settlement_period"].astype(str)) == {"2026-12"}
    assert set(dec_run.lines["adjusts_period"].astype(str)) == {"2026-10"}


def test_credit_cdr_after_close_adjusts_the_original_in_next_period():
    credit = one_cdr_row(
        cdr_id="CR1",
        total_excl=-1000,
        total_incl=-1210,
        energy_excl=-1000,
        energy_incl=-1210,
        is_credit=True,
        credit_of="ON",
        created_at=pd.Timestamp("2026-11-10T00:00Z"),
    )
    run = settle(credit, BOOK, "2026-11", CLOSE_OCT)
    assert set(run.lines["adjusts_cdr_id"]) == {"ON"}
    assert run.lines["is_adjustment"].all()
    assert run.lines.loc[run.lines["kind"] == "emsp_owes_cpo", "gross_minor"].item() == 1210


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cdr_rows(n_max=30), st.integers(0, 20))
def test_settlement_period_rule(cdrs, close_day):
    closed_at = datetime(2026, 11, 1 + close_day, tzinfo=UTC)
    closes = {"2026-09": datetime(2026, 10, 2, tzinfo=UTC), "2026-10": closed_at}
    runs = {p: settle(cdrs, BOOK, p, closes, replay=True) for p in ("2026-09", "2026-10", "2026-11")}
    seen = pd.concat([r.lines for r in runs.values()])
    rejected = pd.concat([r.rejected for r in runs.values()])
    # every CDR settles exactly once
    assert sorted(set(seen["cdr_id"]) | set(rejected["cdr_id"])) == sorted(cdrs["cdr_id"])
    for row in cdrs.to_dict("records"):
        got = seen[seen["cdr_id"] == row["cdr_id"]]
        if got.empty:
            continue
        service = period_of(row["end_date_time"].to_pydatetime()).key
        settled = str(got["settlement_period"].iloc[0])
        late = service in closes and row["created_at"] >= pd.Timestamp(closes[service])
        assert (settled != service) == late
        assert bool(got["is_adjustment"].iloc[0]) == (late or row["is_credit"])
        if late:
            assert str(got["adjusts_period"].iloc[0]) == service
