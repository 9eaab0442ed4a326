"""Netting: from many per-CDR movements to a few transfers per currency, preserving every party's position.

* :func:`positions` — per (currency, party): what it receives, what it pays, and its net position (net,
  VAT, gross). Positions in one currency sum to zero: money neither appears nor disappears.
* :func:`bilateral` — per currency and pair of parties, the movements both ways offset into one transfer.
* :func:`multilateral` — per currency, the fewest simple transfers: with ``clearing_party`` (e.g. the hub)
  everyone settles its position with it; otherwise the largest debtor pays the largest creditor, repeatedly
  (ties broken by party id, so the result is reproducible).

Transfers move gross amounts (``amount_minor``, incl. VAT) from ``payer`` to ``payee``; every method keeps
``received - paid == position`` for every party and currency (property-tested). Currencies never mix.
"""

from __future__ import annotations

import pandas as pd

from .statements import AMOUNTS, ledger

TRANSFER_COLUMNS = ("currency", "payer", "payee", "amount_minor")


def positions(lines: pd.DataFrame) -> pd.DataFrame:
    """Per (currency, party): receivable_minor, payable_minor (gross, >= 0) and net/vat/gross positions."""
    book = ledger(lines)
    grouped = book.groupby(["currency", "party"], sort=True)
    out = grouped[list(AMOUNTS)].sum()
    gross = book["gross_minor"]
    out["receivable_minor"] = gross.clip(lower=0).groupby([book["currency"], book["party"]], sort=True).sum()
    out["payable_minor"] = (-gross).clip(lower=0).groupby([book["currency"], book["party"]], sort=True).sum()
    out = out.reset_index().rename(
        columns={
            "net_minor": "position_net_minor",
            "vat_minor": "position_vat_minor",
            "gross_minor": "position_minor",
        }
    )
    return out


def _frame(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=list(TRANSFER_COLUMNS))
    out["amount_minor"] = out["amount_minor"].astype("int64")
    return out.sort_values(["currency", "payer", "payee"], kind="stable").reset_index(drop=True)


def bilateral(lines: pd.DataFrame) -> pd.DataFrame:
    """One transfer per currency and pair of parties (zero balances dropped)."""
    book = ledger(lines)
    a = book["party"].where(book["party"] < book["counterparty"], book["counterparty"])
    b = book["counterparty"].where(book["party"] < book["counterparty"], book["party"])
    # sum of a's own entries against b = what b owes a (positive) or a owes b (negative)
    mine = book["party"] == a
    pair = (
        book[mine]
        .assign(a=a[mine], b=b[mine])
        .groupby(["currency", "a", "b"], sort=True)["gross_minor"]
        .sum()
    )
    rows = []
    for (currency, left, right), amount in pair.items():
        amount = int(amount)
        if amount > 0:
            rows.append((currency, right, left, amount))
        elif amount < 0:
            rows.append((currency, left, right, -amount))
    return _frame(rows)


def multilateral(lines: pd.DataFrame, clearing_party: str | None = None) -> pd.DataFrame:
    """Transfers settling every position: through ``clearing_party`` if given, else greedy largest-first."""
    pos = positions(lines)
    rows: list[tuple[str, str, str, int]] = []
    for currency, group in pos.groupby("currency", sort=True):
        balance = {str(p): int(v) for p, v in zip(group["party"], group["position_minor"], strict=True)}
        if clearing_party is not None:
            for party, value in sorted(balance.items()):
                if party == clearing_party or value == 0:
                    continue
                rows.append(
                    (currency, clearing_party, party, value)
                    if value > 0
                    else (currency, party, clearing_party, -value)
                )
            continue
        debtors = sorted(((-v, p) for p, v in balance.items() if v < 0), key=lambda t: (-t[0], t[1]))
        creditors = sorted(((v, p) for p, v in balance.items() if v > 0), key=lambda t: (-t[0], t[1]))
        debt_left = [amount for amount, _party in debtors]
        credit_left = [amount for amount, _party in creditors]
        i = j = 0
        while i < len(debtors) and j < len(creditors):
            amount = min(debt_left[i], credit_left[j])
            rows.append((currency, debtors[i][1], creditors[j][1], amount))
            debt_left[i] -= amount
            credit_left[j] -= amount
            if debt_left[i] == 0:
                i += 1
            if credit_left[j] == 0:
                j += 1
    return _frame(rows)


def check_transfers(lines: pd.DataFrame, transfers: pd.DataFrame) -> list[str]:
    """Parties whose received - paid differs from their position (empty list = netting preserved totals)."""
    pos = positions(lines).set_index(["currency", "party"])["position_minor"]
    moved: dict[tuple[str, str], int] = {}
    for cur, payer, payee, amount in transfers[list(TRANSFER_COLUMNS)].itertuples(index=False):
        moved[(cur, payer)] = moved.get((cur, payer), 0) - int(amount)
        moved[(cur, payee)] = moved.get((cur, payee), 0) + int(amount)
    problems = []
    for key in sorted(set(pos.index) | set(moved)):
        want = int(pos.get(key, 0))
        if moved.get(key, 0) != want:
            problems.append(f"{key}: position {want}, transfers {moved.get(key, 0)}")
    return problems
