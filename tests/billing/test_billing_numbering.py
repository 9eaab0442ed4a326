"""Number series: formatting, and the gap-free rule per issuer and series (the pure half of it; the allocator
under concurrency is the database adapter's)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.numbering import (
    IssuedNumber,
    NumberingError,
    Series,
    check_issued,
    check_sequence,
    missing_numbers,
    next_number,
)
from tests.properties.strategies import budget

INV = Series("INV")
RUNNING = Series("CN", yearly=False, width=4, separator="/")


def test_formatting_and_parsing() -> None:
    assert INV.format(2026, 42) == "INV-2026-000042"
    assert INV.format(2026, 1234567) == "INV-2026-1234567"  # wider than the padding: written in full
    assert RUNNING.format(2026, 7) == "CN/0007"
    assert INV.parse("INV-2026-000042") == (2026, 42)
    assert RUNNING.parse("CN/0007") == (None, 7)
    for bad in ("INV-2026-42", "INV-2026-0000042", "INV-26-000042", "XINV-2026-000042", "INV-2026-000000"):
        with pytest.raises(NumberingError):
            INV.parse(bad)
    with pytest.raises(NumberingError):
        Series("inv lower")


def test_the_sequence_restarts_each_year_of_a_yearly_series_only() -> None:
    last = (date(2026, 12, 31), "INV-2026-000041")
    assert next_number(INV, date(2026, 12, 31), last) == "INV-2026-000042"
    assert next_number(INV, date(2027, 1, 1), last) == "INV-2027-000001"
    assert next_number(RUNNING, date(2027, 1, 1), (date(2026, 12, 31), "CN/0041")) == "CN/0042"
    assert next_number(INV, date(2026, 3, 1), None) == "INV-2026-000001"
    with pytest.raises(NumberingError, match="before the last"):
        next_number(INV, date(2026, 12, 30), last)


@st.composite
def issue_days(draw: st.DrawFn) -> list[date]:
    day, out = date(2026, 12, 20), []
    for _ in range(draw(st.integers(1, 40))):
        day += timedelta(days=draw(st.sampled_from([0, 0, 0, 1, 3])))
        out.append(day)
    return out


@budget(200)
@given(issue_days(), st.sampled_from([INV, RUNNING]), st.data())
def test_numbers_from_next_number_are_gap_free_and_any_gap_or_reorder_is_caught(days, series, data) -> None:
    issued, last = [], None
    for day in days:
        number = next_number(series, day, last)
        issued.append((day, number))
        last = (day, number)
    check_sequence(series, issued)
    assert missing_numbers(series, [n for _, n in issued]) == []
    if len(issued) < 2:
        return
    i = data.draw(st.integers(0, len(issued) - 2))
    variants = [
        [*issued[: i + 1], issued[i], *issued[i + 1 :]],  # one issued twice
        [*issued[:i], issued[i + 1], issued[i], *issued[i + 2 :]],  # two swapped
    ]
    if series.period(issued[i][0]) == series.period(issued[i + 1][0]):
        variants.append(issued[:i] + issued[i + 1 :])  # a number lost (the last of a year is the allocator's)
    with pytest.raises(NumberingError):
        check_sequence(series, data.draw(st.sampled_from(variants)))


def test_missing_numbers_names_the_gaps() -> None:
    assert missing_numbers(INV, ["INV-2026-000001", "INV-2026-000004", "INV-2027-000002"]) == [
        "INV-2026-000002",
        "INV-2026-000003",
        "INV-2027-000001",
    ]


@budget(150)
@given(
    st.lists(st.tuples(st.sampled_from(["CPO-1", "CPO-2", "HUB"]), st.sampled_from([0, 0, 1])), max_size=40)
)
def test_each_issuer_and_series_is_gap_free_however_issuers_interleave(calls) -> None:
    """Issuers number independently (the same number may exist at two issuers); one issuer taking the number
    after another issuer's last is caught."""
    day, last, issued = date(2026, 12, 30), {}, []
    for issuer, step in calls:
        day += timedelta(days=step)
        number = next_number(INV, day, last.get(issuer))
        last[issuer] = (day, number)
        issued.append(IssuedNumber(issuer, INV, day, number))
    check_issued(issued)
    final = day
    for a in sorted(last):
        for b in sorted(last):
            theirs, ours = next_number(INV, final, last[b]), next_number(INV, final, last[a])
            if a != b and theirs != ours:
                with pytest.raises(NumberingError, match=f"issuer {a}"):
                    check_issued([*issued, IssuedNumber(a, INV, final, theirs)])
