"""Invoice number series: how a number is written, and the rule that numbers are gap-free.

A :class:`Series` writes numbers as ``{prefix}{sep}{year}{sep}{sequence}`` (``INV-2026-000042``), the sequence
zero-padded to ``width`` digits (a longer one is written in full), restarting at 1 each year when ``yearly``
(else one running sequence: ``CN-000042``). EU VAT law asks for "a sequential number which uniquely identifies
the invoice" (Directive 2006/112/EC, Article 226(2)); evhub keeps each issuer's series **gap-free**: every
number from 1 up to the last is issued exactly once, in issue-date order.

This module is the pure rule: :func:`next_number` (the number after the last one issued) and
:func:`check_sequence` (an issuer's numbers of one series, in issue order, are the gap-free run). The allocator
that hands out numbers under concurrency and crashes (one row per issuer and series, locked in the issuing
transaction) is a database adapter, next session.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


class NumberingError(ValueError):
    """A number or a sequence that breaks the series' rules."""


@dataclass(frozen=True, slots=True)
class Series:
    """One issuer's number series: ``prefix`` (letters, digits, ``/``, ``_``), yearly or running, padding."""

    prefix: str
    yearly: bool = True
    width: int = 6
    separator: str = "-"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z0-9_/]{1,20}", self.prefix):
            raise NumberingError(f"series prefix {self.prefix!r}: 1-20 of A-Z, 0-9, _ and /")
        if not 1 <= self.width <= 12:
            raise NumberingError("sequence width must be 1-12 digits")
        if self.separator not in ("-", "/", "."):
            raise NumberingError("separator must be -, / or .")

    def format(self, year: int, sequence: int) -> str:
        """The number of ``sequence`` (from 1) in ``year`` (ignored by a running series)."""
        if sequence < 1:
            raise NumberingError("sequences start at 1")
        parts = [self.prefix, *([f"{year:04d}"] if self.yearly else []), f"{sequence:0{self.width}d}"]
        return self.separator.join(parts)

    def parse(self, number: str) -> tuple[int | None, int]:
        """(year or None, sequence) of a number of this series, or NumberingError."""
        sep = re.escape(self.separator)
        year = rf"{sep}(\d{{4}})" if self.yearly else ""
        match = re.fullmatch(rf"{re.escape(self.prefix)}{year}{sep}(\d{{{self.width},}})", number)
        if not match:
            raise NumberingError(f"{number!r} is not a number of series {self.prefix}")
        sequence = int(match.group(match.lastindex or 1))
        if sequence < 1 or self.format(int(match.group(1)) if self.yearly else 0, sequence) != number:
            raise NumberingError(f"{number!r} is not written as series {self.prefix} writes its numbers")
        return (int(match.group(1)) if self.yearly else None, sequence)

    def period(self, issue_date: date) -> int | None:
        """The numbering period an issue date belongs to: its year, or None for a running series."""
        return issue_date.year if self.yearly else None


def next_number(series: Series, issue_date: date, last: tuple[date, str] | None) -> str:
    """The number for an invoice issued on ``issue_date`` after ``last`` (its issue date and number; None for
    the first): the next sequence, or 1 in a new year of a yearly series. Issue dates never go backwards."""
    if last is None:
        return series.format(issue_date.year, 1)
    last_date, last_number = last
    if issue_date < last_date:
        raise NumberingError(f"issue date {issue_date} is before the last issued {last_number} ({last_date})")
    year, sequence = series.parse(last_number)
    if year is not None and year != last_date.year:
        raise NumberingError(f"{last_number} carries year {year} but was issued on {last_date}")
    if series.period(issue_date) != series.period(last_date):
        return series.format(issue_date.year, 1)
    return series.format(issue_date.year, sequence + 1)


def check_sequence(series: Series, issued: Sequence[tuple[date, str]]) -> None:
    """NumberingError unless ``issued`` (one issuer's (issue date, number) of this series, in issue order) is
    gap-free: each number the :func:`next_number` of the one before, from 1 (duplicates, gaps, a number out
    of order, a year that is not the issue year are named)."""
    seen: set[str] = set()
    previous: tuple[date, str] | None = None
    for issue_date, number in issued:
        if number in seen:
            raise NumberingError(f"{number} is issued twice")
        expected = next_number(series, issue_date, previous)
        if number != expected:
            raise NumberingError(
                f"{number} (issued {issue_date}) where {expected} was due: a gap or a reorder"
            )
        seen.add(number)
        previous = (issue_date, number)


def missing_numbers(series: Series, numbers: Sequence[str]) -> list[str]:
    """The numbers absent from ``numbers`` (any order) between 1 and the highest of each year: the gaps."""
    by_year: dict[int | None, set[int]] = {}
    for number in numbers:
        year, sequence = series.parse(number)
        by_year.setdefault(year, set()).add(sequence)
    return [
        series.format(year or 0, n)
        for year in sorted(by_year, key=lambda y: y or 0)
        for n in range(1, max(by_year[year]) + 1)
        if n not in by_year[year]
    ]


@dataclass(frozen=True, slots=True)
class IssuedNumber:
    """One issued document number: who issued it, in which series, on which day."""

    issuer: str
    series: Series
    issue_date: date
    number: str


def check_issued(issued: Sequence[IssuedNumber]) -> None:
    """NumberingError unless, for every issuer and series, its numbers in ``issued`` (all issuers interleaved,
    in issue order) are gap-free (:func:`check_sequence`); a series is told by its prefix."""
    runs: dict[tuple[str, str], list[IssuedNumber]] = {}
    for item in issued:
        runs.setdefault((item.issuer, item.series.prefix), []).append(item)
    for (issuer, prefix), items in runs.items():
        if len({item.series for item in items}) != 1:
            raise NumberingError(f"issuer {issuer}: series {prefix} is written in two ways")
        try:
            check_sequence(items[0].series, [(item.issue_date, item.number) for item in items])
        except NumberingError as exc:
            raise NumberingError(f"issuer {issuer}, series {prefix}: {exc}") from exc
