"""The same split on dask.dataframe: partitions are split independently with the pandas function.

The split is per CDR (no row looks at another: agreement lookup, rounding and period assignment use only
the row itself, the agreement book and the closing instants), so ``map_partitions`` of
:func:`settlement.core.split.split` over any partitioning gives the same lines as one pandas call; only the
row order can differ, which :func:`settlement.core.canonical_exports.canonical_order` removes. Tested on a
LocalCluster. :func:`dask_splitter` is the :data:`settlement.core.run.Splitter` a run uses; it computes on the
default Dask scheduler, which may be a ``distributed`` cluster over the network (hence not in the core).

Dask and distributed are an extra (``pip install 'evhub[dask]'``): they are imported only when the Dask
engine is chosen, through :func:`require_dask`, which turns their absence into :class:`DaskMissing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from settlement.core.agreements import AgreementBook
from settlement.core.run import Splitter
from settlement.core.split import PickBasis, split

DASK_MISSING = "the Dask engine needs `pip install 'evhub[dask]'`"


class DaskMissing(RuntimeError):
    """Dask (or distributed) is not installed; its message is :data:`DASK_MISSING`."""

    def __init__(self) -> None:
        super().__init__(DASK_MISSING)


def require_dask() -> None:
    """Raise :class:`DaskMissing` unless dask.dataframe and distributed can be imported."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise DaskMissing() from exc


def _lines(
    part: pd.DataFrame, book: AgreementBook, closes: Mapping[str, datetime], pick_basis: PickBasis
) -> pd.DataFrame:
    return _plain(split(part, book, closes=closes, pick_basis=pick_basis).lines)


def _rejected(
    part: pd.DataFrame, book: AgreementBook, closes: Mapping[str, datetime], pick_basis: PickBasis
) -> pd.DataFrame:
    return split(part, book, closes=closes, pick_basis=pick_basis).rejected


def split_dask(
    cdrs,
    book: AgreementBook,
    *,
    closes: Mapping[str, datetime] | None = None,
    pick_basis: PickBasis = "end_date_time",
):
    """Lazy ``(lines, rejected)`` dask DataFrames for a dask DataFrame of minor-unit CDRs."""
    closes = dict(closes or {})
    meta_input = cdrs._meta if hasattr(cdrs, "_meta") else cdrs.head(0)
    meta_result = split(meta_input, book, closes=closes, pick_basis=pick_basis)
    lines = cdrs.map_partitions(_lines, book, closes, pick_basis, meta=_plain(meta_result.lines))
    rejected = cdrs.map_partitions(_rejected, book, closes, pick_basis, meta=_plain(meta_result.rejected))
    return lines, rejected


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Meta with object dtype in place of categoricals: partitions have different category sets."""
    return frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})


def split_dask_computed(cdrs, book: AgreementBook, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run :func:`split_dask` and return pandas ``(lines, rejected)``."""
    require_dask()
    import dask

    lines, rejected = split_dask(cdrs, book, **kwargs)
    lines_pd, rejected_pd = dask.compute(lines, rejected)
    return lines_pd.reset_index(drop=True), rejected_pd.reset_index(drop=True)


def split_pandas_on_dask(
    cdrs: pd.DataFrame, book: AgreementBook, partitions: int, **kwargs
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a pandas table of minor-unit CDRs over ``partitions`` dask partitions (on the default dask
    scheduler, e.g. a ``distributed.Client`` the caller created); pandas ``(lines, rejected)``."""
    require_dask()
    import dask.dataframe as dd

    return split_dask_computed(dd.from_pandas(cdrs, npartitions=partitions), book, **kwargs)


def dask_splitter(partitions: int | None = None) -> Splitter:
    """A :data:`~settlement.core.run.Splitter` over ``partitions`` dask partitions (default: one per 250,000
    CDRs, 1 to 64). Raises :class:`DaskMissing` at once, before any table is read, without the extra."""
    require_dask()

    def split_on_dask(
        cdrs: pd.DataFrame, book: AgreementBook, closes: Mapping[str, datetime], pick_basis: PickBasis
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        parts = partitions or max(1, min(64, len(cdrs) // 250_000 + 1))
        return split_pandas_on_dask(cdrs, book, parts, closes=closes, pick_basis=pick_basis)

    return split_on_dask
