"""The split in bounded memory: CDRs in chunks, each chunk's lines folded into per-party positions.

:func:`settlement.core.split.split` is per CDR (no row looks at another once
:func:`settlement.core.accounting_periods.with_credit_terms` and ``with_carried`` have put the cross-row facts
on each row), so splitting contiguous chunks and concatenating them gives the lines of one call, row for row
(tested against the unchunked split and the frozen reference in tests/settlement/test_settlement_chunked.py).
What the chunks save is memory: the split's intermediates (some forty int64 arrays per CDR and the long line
table) exist for one chunk at a time, so ten million CDRs settle in well under 4 GB when the chunks' lines are
consumed as they come (folded into :class:`Positions`, written to a file) instead of being kept.

Pure: chunks come from any iterable of minor-unit CDR tables (slices of a frame, parquet row groups read at
the edge by :mod:`settlement.parquet_engine`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from .agreements import AgreementBook
from .split import PickBasis, SplitResult, split

DEFAULT_CHUNK_ROWS = 500_000
"""CDRs per chunk: large enough that per-chunk costs (agreement tables, factorising keys) vanish, small enough
that a chunk's intermediates stay in a few hundred MB."""

POSITION_KEYS = ("settlement_period", "currency", "party")
AMOUNTS = ("net_minor", "vat_minor", "gross_minor")


def frame_chunks(cdrs: pd.DataFrame, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Contiguous slices of ``chunk_rows`` CDRs (the last one shorter; none for an empty table)."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    for start in range(0, len(cdrs), chunk_rows):
        yield cdrs.iloc[start : start + chunk_rows]


def split_chunks(
    chunks: Iterable[pd.DataFrame],
    book: AgreementBook,
    *,
    closes: Mapping[str, datetime] | None = None,
    pick_basis: PickBasis = "end_date_time",
) -> Iterator[SplitResult]:
    """:func:`~settlement.core.split.split` of each chunk, in order, one chunk in memory at a time."""
    for chunk in chunks:
        yield split(chunk, book, closes=closes, pick_basis=pick_basis)


def concat_results(results: Iterable[SplitResult]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(lines, rejected)`` of chunk results, as one split of the whole table gives them (in its row order;
    categorical columns take the union of the chunks' categories)."""
    lines, rejected = [], []
    for result in results:
        lines.append(result.lines)
        rejected.append(result.rejected)
    if not lines:
        raise ValueError("no chunks")
    return concat_frames(lines), concat_frames(rejected)


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames, ignore_index=True)
    first = frames[0]
    for column in first.columns:
        if isinstance(first[column].dtype, pd.CategoricalDtype):
            values = np.concatenate([f[column].astype(object).to_numpy() for f in frames])
            out[column] = pd.Categorical(values)
    return out


@dataclass
class Positions:
    """Running per-(settlement period, currency, party) totals of lines, in int64 minor units, and counts.

    Fold chunks' results in with :meth:`add`; :meth:`table` is the netting input (one row per key, sorted)."""

    lines: int = 0
    cdrs_rejected: int = 0
    _parts: list[pd.DataFrame] = field(default_factory=list, repr=False)

    def add(self, result: SplitResult) -> None:
        lines = result.lines
        self.lines += len(lines)
        self.cdrs_rejected += len(result.rejected)
        if len(lines):
            self._parts.append(_sum(lines[[*POSITION_KEYS, *AMOUNTS]]))
            if len(self._parts) > 16:  # keep the partial sums few
                self._parts = [_sum(pd.concat(self._parts, ignore_index=True))]

    def table(self) -> pd.DataFrame:
        """``settlement_period, currency, party, net_minor, vat_minor, gross_minor``, sorted by the keys."""
        if not self._parts:
            empty = {k: pd.Series([], dtype=object) for k in POSITION_KEYS}
            return pd.DataFrame({**empty, **{a: np.zeros(0, np.int64) for a in AMOUNTS}})
        return _sum(pd.concat(self._parts, ignore_index=True))


def _sum(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.groupby(list(POSITION_KEYS), sort=True, observed=True)[list(AMOUNTS)].sum().reset_index()
    for key in POSITION_KEYS:
        out[key] = out[key].astype(str).astype(object)
    return out.astype({a: np.int64 for a in AMOUNTS})
