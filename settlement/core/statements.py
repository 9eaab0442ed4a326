"""Per-party statements: every money movement a party is in, with totals per currency (never mixed).

The split's lines give each party one signed line per CDR. A statement needs the movements behind them:
:func:`ledger` turns every paying line (``emsp_owes_cpo``, ``hub_fee``, ``site_host_share``) into two
entries, one for each side, with opposite signs. The CPO thus sees +total from the eMSP, -hub fee and
-site host share, which add up to its ``cpo_retained`` line. ``cpo_retained`` itself moves no money and is
left out of the ledger. A party's ledger total per currency equals the sum of its split lines (tested).

Amounts are int64 minor units (``*_minor``); :class:`Statement` carries Decimal totals for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from .minor import from_minor

PAYING_KINDS = ("emsp_owes_cpo", "hub_fee", "site_host_share")
AMOUNTS = ("net_minor", "vat_minor", "gross_minor")
LEDGER_COLUMNS = (
    "settlement_period",
    "party",
    "currency",
    "cdr_id",
    "line_no",
    "kind",
    "counterparty",
    *AMOUNTS,
    "is_adjustment",
    "adjusts_period",
    "adjusts_cdr_id",
)


def ledger(lines: pd.DataFrame) -> pd.DataFrame:
    """Both sides of every paying line: entries (party, counterparty, kind, signed amounts), stable order."""
    paying = lines[lines["kind"].isin(PAYING_KINDS)]
    keep = [c for c in LEDGER_COLUMNS if c in paying.columns and c not in ("party", "counterparty", *AMOUNTS)]
    own = paying[keep].assign(
        party=paying["party"].astype(str), counterparty=paying["counterparty"].astype(str)
    )
    other = paying[keep].assign(
        party=paying["counterparty"].astype(str), counterparty=paying["party"].astype(str)
    )
    for col in AMOUNTS:
        own[col] = paying[col].to_numpy()
        other[col] = -paying[col].to_numpy()
    own["side"], other["side"] = 0, 1
    out = pd.concat([own, other], ignore_index=True)
    out["kind"] = out["kind"].astype(str)
    out["currency"] = out["currency"].astype(str)
    sort = [
        c for c in ("party", "currency", "settlement_period", "cdr_id", "line_no", "side") if c in out.columns
    ]
    out = out.sort_values(sort, kind="stable").reset_index(drop=True)
    return out[[c for c in LEDGER_COLUMNS if c in out.columns]]


def statement_totals(lines: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Totals per (party, currency[, *by]) in minor units, from the split lines (``cpo_retained`` included)."""
    keys = ["party", "currency", *by]
    out = (
        lines.assign(**{k: lines[k].astype(str) for k in keys})
        .groupby(keys, sort=True, observed=True)[list(AMOUNTS)]
        .sum()
        .reset_index()
    )
    return out


@dataclass(frozen=True)
class CurrencySection:
    """One currency of a statement: the entries, their totals and subtotals. Never mixes currencies."""

    currency: str
    entries: pd.DataFrame
    net: Decimal
    vat: Decimal
    gross: Decimal
    by_kind: pd.DataFrame
    by_counterparty: pd.DataFrame


@dataclass(frozen=True)
class Statement:
    """A party's statement for one settlement run, one section per currency (sorted)."""

    party: str
    period: str | None
    sections: tuple[CurrencySection, ...]

    def totals(self) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
        return {s.currency: (s.net, s.vat, s.gross) for s in self.sections}


def build_statement(lines: pd.DataFrame, party: str, period: str | None = None) -> Statement:
    """The statement of ``party`` from split lines (optionally only one settlement period)."""
    book = ledger(lines)
    book = book[book["party"] == party]
    if period is not None and "settlement_period" in book.columns:
        book = book[book["settlement_period"].astype(str) == period]
    sections = []
    for currency in sorted(book["currency"].unique()):
        entries = book[book["currency"] == currency].reset_index(drop=True)
        sums = entries[list(AMOUNTS)].sum()
        sections.append(
            CurrencySection(
                currency=currency,
                entries=entries,
                net=from_minor(int(sums["net_minor"]), currency),
                vat=from_minor(int(sums["vat_minor"]), currency),
                gross=from_minor(int(sums["gross_minor"]), currency),
                by_kind=entries.groupby("kind", sort=True)[list(AMOUNTS)].sum().reset_index(),
                by_counterparty=entries.groupby("counterparty", sort=True)[list(AMOUNTS)].sum().reset_index(),
            )
        )
    return Statement(party=party, period=period, sections=tuple(sections))


def parties(lines: pd.DataFrame) -> list[str]:
    """Every party with a line, sorted."""
    return sorted(set(np.asarray(lines["party"].astype(str).unique(), dtype=object)))
