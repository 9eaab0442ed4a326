"""A settlement run's computation: from a period's inputs to its lines, rejections, transfers and summary.

:func:`settle` takes plain inputs — a minor-unit CDR DataFrame (see :mod:`settlement.core.split`; build it
from Decimal rows with :func:`settlement.core.cdrs.prepare_cdrs`), an
:class:`~settlement.core.agreements.AgreementBook`, the period key and the closing instants of closed
periods — and returns a :class:`RunResult`: the period's lines (including adjustments for late and credit
CDRs), the CDRs it could not split, netted transfers and a :class:`RunSummary` with counts, totals per
currency and kind, and the content hash. Pure: no database, no network, no clock. The split itself is a
:data:`Splitter` (pandas by default; :func:`settlement.dask_engine.dask_splitter` gives the same answer on
Dask), so the engine is chosen by the caller.

A closed period is never rewritten: settling it raises
:class:`~settlement.core.accounting_periods.ClosedPeriodError` unless ``replay=True``, which recomputes it for
verification (same inputs -> same hash).

Rejections are carried forward: ``carried`` lists the CDRs each closed period's closing run rejected
(``cdr_id``, ``period``). A run of period K tries them again (only the rejections of periods before K count,
so a replay meets each CDR where its closing run met it): they settle in K as adjustments of their service
period, or are listed in K's rejections with the period that first rejected them (``first_rejected_in``).
A credit CDR is given the period its original settles in (``terms_month``), so it is split with its
original's terms wherever it settles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from .accounting_periods import ensure_open, parse_period, with_carried, with_credit_terms
from .agreements import AgreementBook
from .canonical_exports import content_hash
from .chunked import concat_frames
from .minor import format_minor
from .netting import bilateral, multilateral
from .split import PickBasis, split

Splitter = Callable[
    [pd.DataFrame, AgreementBook, Mapping[str, datetime], PickBasis], tuple[pd.DataFrame, pd.DataFrame]
]
"""``(cdrs, book, closes, pick_basis) -> (lines, rejected)``: how the CDRs are split, for every period at once."""


def split_with_pandas(
    cdrs: pd.DataFrame, book: AgreementBook, closes: Mapping[str, datetime], pick_basis: PickBasis
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The default :data:`Splitter`: one :func:`~settlement.core.split.split` call in this process."""
    result = split(cdrs, book, closes=closes, pick_basis=pick_basis)
    return result.lines, result.rejected


@dataclass(frozen=True)
class RunSummary:
    """What a run did, in plain types (ready to store in ``settlement_runs``)."""

    period: str
    cdrs_considered: int
    cdrs_settled: int
    adjustments: int
    cdrs_rejected: int
    rejected_by_reason: dict[str, int]
    lines: int
    totals: dict[str, dict[str, dict[str, str]]]  # currency -> kind -> {"net","vat","gross"} decimal strings
    agreements_used: list[str]
    content_hash: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RunResult:
    """What settling one period gives: its lines, the CDRs it could not split, transfers and the summary."""

    period: str
    lines: pd.DataFrame
    rejected: pd.DataFrame
    transfers: pd.DataFrame
    summary: RunSummary
    all_lines: pd.DataFrame | None = field(default=None, repr=False)  # every CDR's lines (None: in chunks)


def settle(
    cdrs: pd.DataFrame,
    book: AgreementBook,
    period: str,
    closes: Mapping[str, datetime] | None = None,
    *,
    replay: bool = False,
    netting: Literal["bilateral", "multilateral", "clearing"] = "bilateral",
    clearing_party: str = "HUB",
    pick_basis: PickBasis = "end_date_time",
    splitter: Splitter = split_with_pandas,
    carried: pd.DataFrame | None = None,
) -> RunResult:
    """Settle ``period``: lines of every CDR whose settlement period it is (see
    :mod:`settlement.core.accounting_periods`). ``splitter`` splits every CDR (the answer does not depend on
    which one). ``carried``: the closing runs' rejections (``cdr_id``, ``period``), see the module docstring."""
    part = settle_chunk(
        cdrs, book, period, closes, replay=replay, pick_basis=pick_basis, splitter=splitter, carried=carried
    )
    result = finish(period, [part], netting=netting, clearing_party=clearing_party)
    return RunResult(
        period=result.period,
        lines=result.lines,
        rejected=result.rejected,
        transfers=result.transfers,
        summary=result.summary,
        all_lines=part.all_lines,
    )


@dataclass(frozen=True)
class ChunkResult:
    """One chunk of a period's CDRs settled: its lines and rejections in the period, and how many CDRs it had.
    ``all_lines`` (every period's lines of the chunk) is dropped by :func:`finish`."""

    lines: pd.DataFrame
    rejected: pd.DataFrame
    considered: int
    all_lines: pd.DataFrame = field(repr=False)


def settle_chunk(
    cdrs: pd.DataFrame,
    book: AgreementBook,
    period: str,
    closes: Mapping[str, datetime] | None = None,
    *,
    own_rows: int | None = None,
    replay: bool = False,
    pick_basis: PickBasis = "end_date_time",
    splitter: Splitter = split_with_pandas,
    carried: pd.DataFrame | None = None,
) -> ChunkResult:
    """Settle one chunk of a period's CDRs (the split is per CDR once the cross-row facts are on the rows).

    ``own_rows``: only the first ``own_rows`` rows are the chunk's; the rows after them are context — the
    originals of the chunk's credit CDRs that are in other chunks — read for the credits' ``terms_month`` and
    not split. :func:`finish` of the chunks' results, in order, is :func:`settle` of their concatenation."""
    key = parse_period(period).key
    closes = dict(closes or {})
    if not replay:
        ensure_open(key, closes)
    if carried is not None:
        cdrs = with_carried(cdrs, carried, key, closes)
    cdrs = with_credit_terms(cdrs, closes)
    if own_rows is not None and own_rows < len(cdrs):
        cdrs = cdrs.iloc[:own_rows].reset_index(drop=True)
    all_lines, all_rejected = splitter(cdrs, book, closes, pick_basis)
    in_period = all_lines["settlement_period"].astype(str) == key
    lines = all_lines[in_period].reset_index(drop=True)
    rejected = all_rejected[all_rejected["settlement_period"].astype(str) == key].reset_index(drop=True)
    return ChunkResult(lines=lines, rejected=rejected, considered=len(cdrs), all_lines=all_lines)


def finish(
    period: str,
    chunks: Iterable[ChunkResult],
    *,
    netting: Literal["bilateral", "multilateral", "clearing"] = "bilateral",
    clearing_party: str = "HUB",
) -> RunResult:
    """The run of ``period`` from its chunks' results in CDR order: their lines and rejections concatenated
    (as one split of all the CDRs gives them), netted, summarised. ``all_lines`` is not kept (``None``)."""
    key = parse_period(period).key
    lines_parts, rejected_parts, considered = [], [], 0
    for chunk in chunks:
        lines_parts.append(chunk.lines)
        rejected_parts.append(chunk.rejected)
        considered += chunk.considered
    if not lines_parts:
        raise ValueError("no chunks")
    lines, rejected = concat_frames(lines_parts), concat_frames(rejected_parts)
    if netting == "bilateral":
        transfers = bilateral(lines)
    else:
        transfers = multilateral(lines, clearing_party if netting == "clearing" else None)
    summary = _summary(key, considered, lines, rejected)
    return RunResult(period=key, lines=lines, rejected=rejected, transfers=transfers, summary=summary)


def summarize(period: str, cdrs: pd.DataFrame, lines: pd.DataFrame, rejected: pd.DataFrame) -> RunSummary:
    """Counts, totals per currency and kind (decimal strings), agreements used, content hash."""
    return _summary(period, len(cdrs), lines, rejected)


def _summary(period: str, considered: int, lines: pd.DataFrame, rejected: pd.DataFrame) -> RunSummary:
    totals: dict[str, dict[str, dict[str, str]]] = {}
    if len(lines):
        grouped = (
            lines.assign(currency=lines["currency"].astype(str), kind=lines["kind"].astype(str))
            .groupby(["currency", "kind"], sort=True)[["net_minor", "vat_minor", "gross_minor"]]
            .sum()
        )
        for (currency, kind), row in grouped.iterrows():
            totals.setdefault(currency, {})[kind] = {
                name: format_minor(int(row[f"{name}_minor"]), currency) for name in ("net", "vat", "gross")
            }
    cdr_ids = lines["cdr_id"].astype(str)
    used = (
        sorted(set(lines["agreement_id"].astype(str) + "@v" + lines["agreement_version"].astype(str)))
        if len(lines)
        else []
    )
    reasons = rejected["reason"].value_counts().sort_index()
    return RunSummary(
        period=period,
        cdrs_considered=considered,
        cdrs_settled=int(cdr_ids.nunique()),
        adjustments=int(lines.loc[lines["is_adjustment"], "cdr_id"].nunique()) if len(lines) else 0,
        cdrs_rejected=len(rejected),
        rejected_by_reason={str(k): int(v) for k, v in reasons.items()},
        lines=len(lines),
        totals=totals,
        agreements_used=used,
        content_hash=content_hash(lines, rejected),
    )
