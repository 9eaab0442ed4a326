"""Vectorised agreement lookup: for every CDR, the row of the agreement version in force for its scope.

The scalar rule is :func:`settlement.core.agreements.in_force`; this module does the same for millions of CDRs
with one ``searchsorted``: scope tuples are coded to small integers ``g``, instants to whole seconds ``t``,
and each effective interval becomes the sortable key ``g * 2**34 + start``. A CDR's candidate is the last
interval starting at or before ``g * 2**34 + t``; it matches if it has the same ``g`` and ``t < end``.
Interval bounds are whole days, so second resolution is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

_SHIFT = np.int64(2**34)  # seconds up to the year 2514
_OPEN_END = np.int64(2**34 - 1)


class KeyCoder:
    """Factorises CDR key columns once so several lookups can share the work."""

    def __init__(self, columns: dict[str, pd.Series]):
        self._codes: dict[str, np.ndarray] = {}
        self._uniques: dict[str, pd.Index] = {}
        for name, col in columns.items():
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            self._codes[name] = codes.astype(np.int64)
            # plain object values: matching agreement scopes against a categorical index is its slow path
            self._uniques[name] = pd.Index(np.asarray(uniques, dtype=object), dtype=object)

    def codes(self, name: str) -> np.ndarray:
        return self._codes[name]

    def uniques(self, name: str) -> pd.Index:
        return self._uniques[name]

    def combined(
        self, names: Sequence[str], values: Sequence[tuple[str, ...]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mixed-radix codes of the CDRs' key tuples and of the given scope tuples (-1: not among CDRs)."""
        n_rows = len(next(iter(self._codes.values()))) if self._codes else 0
        row_code = np.zeros(n_rows, dtype=np.int64)
        val_code = np.zeros(len(values), dtype=np.int64)
        row_bad = np.zeros(n_rows, dtype=bool)
        val_bad = np.zeros(len(values), dtype=bool)
        for j, name in enumerate(names):
            radix = np.int64(len(self._uniques[name]) + 1)
            codes = self._codes[name]
            row_bad |= codes < 0
            row_code = row_code * radix + codes
            wanted = pd.Index([v[j] for v in values], dtype=object)
            found = self._uniques[name].get_indexer(wanted) if len(values) else np.zeros(0, dtype=np.int64)
            val_bad |= found < 0
            val_code = val_code * radix + found
        return np.where(row_bad, -1, row_code), np.where(val_bad, -1, val_code)


def seconds(instant: datetime | None) -> np.int64:
    """An interval bound in whole seconds since the epoch; ``None`` (open end) is the far future."""
    if instant is None:
        return _OPEN_END
    return np.int64(int(instant.timestamp()))


def _as_seconds(instants: Sequence[datetime | None] | np.ndarray) -> np.ndarray:
    if isinstance(instants, np.ndarray):
        return instants.astype(np.int64, copy=False)
    return np.array([seconds(i) for i in instants], dtype=np.int64)


def lookup(
    row_codes: np.ndarray,
    row_seconds: np.ndarray,
    interval_codes: np.ndarray,
    starts: Sequence[datetime] | np.ndarray,
    ends: Sequence[datetime | None] | np.ndarray,
) -> np.ndarray:
    """Index into the intervals of the one in force for each row, or -1. ``starts`` / ``ends``: instants, or
    int64 seconds (:func:`seconds`) already."""
    n = len(row_codes)
    usable = np.flatnonzero(np.asarray(interval_codes) >= 0)
    if n == 0 or usable.size == 0:
        return np.full(n, -1, dtype=np.int64)
    groups, group_of = np.unique(np.asarray(interval_codes)[usable], return_inverse=True)
    start_s = _as_seconds(starts)[usable]
    end_s = _as_seconds(ends)[usable]
    keys = group_of.astype(np.int64) * _SHIFT + start_s
    order = np.argsort(keys, kind="stable")
    keys, usable, end_s, group_sorted = keys[order], usable[order], end_s[order], group_of[order]

    # group of each row: a dense table when the codes are small (the usual case), else a binary search
    if int(groups[-1]) < 50_000_000:
        dense = np.full(int(groups[-1]) + 2, -1, dtype=np.int64)
        dense[groups] = np.arange(len(groups), dtype=np.int64)
        pos = dense[np.where((row_codes >= 0) & (row_codes <= groups[-1]), row_codes, groups[-1] + 1)]
        has_group = pos >= 0
        pos_clipped = np.maximum(pos, 0)
    else:
        pos = np.searchsorted(groups, row_codes)
        pos_clipped = np.minimum(pos, len(groups) - 1)
        has_group = (row_codes >= 0) & (groups[pos_clipped] == row_codes)
    first = np.searchsorted(group_sorted, np.arange(len(groups)), side="left")
    if np.all(np.diff(np.append(first, len(group_sorted))) == 1):
        cand_clipped = first[pos_clipped]  # one interval per group: no search needed
        ok = has_group & (keys[cand_clipped] <= pos_clipped.astype(np.int64) * _SHIFT + row_seconds)
    else:
        row_keys = pos_clipped.astype(np.int64) * _SHIFT + np.asarray(row_seconds, dtype=np.int64)
        cand = np.searchsorted(keys, row_keys, side="right") - 1
        cand_clipped = np.maximum(cand, 0)
        ok = has_group & (cand >= 0) & (group_sorted[cand_clipped] == pos_clipped)
    ok &= np.asarray(row_seconds) < end_s[cand_clipped]
    return np.where(ok, usable[cand_clipped], -1).astype(np.int64)
