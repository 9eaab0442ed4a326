"""Settlement of a period from partitioned parquet: bounded memory on one machine, or Dask workers for a period
larger than one machine's memory (the I/O edge around :mod:`settlement.core.chunked`).

Input: a directory of parquet files of minor-unit CDRs (:data:`settlement.core.split.REQUIRED_COLUMNS` and the
optional columns; :func:`write_cdr_parts` writes one file per chunk), with the cross-row facts already on the
rows (``terms_month``, ``carried_until``: :func:`settlement.core.accounting_periods.with_credit_terms` and
``with_carried``), as :func:`settlement.core.run.settle` puts them before it splits.

* :func:`positions_from_parquet`: one process reads row group after row group, splits each and folds its lines
  into :class:`~settlement.core.chunked.Positions`; only one row group's CDRs and lines are in memory.
* :func:`split_parquet_on_dask`: every parquet file is a Dask partition; a worker splits it and writes its lines
  and rejections to ``out/lines/part-NNNNN.parquet`` and ``out/rejected/part-NNNNN.parquet``, and hands back
  only the partition's positions. Nothing is gathered but positions, so the period may exceed the memory of
  every machine; the lines files are the same lines as one pandas split, to the cent (categoricals are written
  as strings: partitions have different category sets).

Dask and distributed are the ``evhub[dask]`` extra, imported when this engine runs (:func:`require_dask`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from settlement.core.agreements import AgreementBook
from settlement.core.chunked import AMOUNTS, POSITION_KEYS, Positions, split_chunks
from settlement.core.split import PickBasis, split
from settlement.dask_engine import require_dask


def write_cdr_parts(
    chunks: Iterable[pd.DataFrame], directory: Path, row_group_rows: int = 250_000
) -> list[Path]:
    """Write each chunk of minor-unit CDRs as ``directory/cdrs-NNNNN.parquet``; the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for i, chunk in enumerate(chunks):
        path = directory / f"cdrs-{i:05d}.parquet"
        chunk.to_parquet(path, index=False, row_group_size=row_group_rows)
        written.append(path)
    return written


def cdr_files(directory: Path) -> list[Path]:
    """The parquet files of a CDR directory, in name order (the order of their rows)."""
    files = sorted(directory.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files in {directory}")
    return files


def _row_groups(directory: Path) -> Iterator[tuple[Path, int]]:
    for path in cdr_files(directory):
        with pq.ParquetFile(path) as file:
            groups = file.num_row_groups
        for group in range(groups):
            yield path, group


def _read_group(path: Path, group: int) -> pd.DataFrame:
    with pq.ParquetFile(path) as file:
        return file.read_row_group(group).to_pandas()


def parquet_chunks(directory: Path, *, prefetch: bool = True) -> Iterator[pd.DataFrame]:
    """The CDRs of every row group of every file, in order, one row group at a time. ``prefetch``: the next
    row group is read and converted on a reader thread while the caller splits this one (pyarrow decodes
    without the GIL), so reading overlaps splitting; two row groups are in memory at most."""
    groups = _row_groups(directory)
    if not prefetch:
        for path, group in groups:
            yield _read_group(path, group)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-read") as reader:
        pending: Future[pd.DataFrame] | None = None
        for path, group in groups:
            following = reader.submit(_read_group, path, group)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()


def positions_from_parquet(
    directory: Path,
    book: AgreementBook,
    *,
    closes: Mapping[str, datetime] | None = None,
    pick_basis: PickBasis = "end_date_time",
    prefetch: bool = True,
) -> Positions:
    """Per-party positions of every CDR in ``directory``, split one row group at a time in this process
    (the next one read meanwhile unless ``prefetch`` is false: :func:`parquet_chunks`)."""
    positions = Positions()
    chunks = parquet_chunks(directory, prefetch=prefetch)
    for result in split_chunks(chunks, book, closes=closes, pick_basis=pick_basis):
        positions.add(result)
    return positions


@dataclass(frozen=True)
class DaskRun:
    """What :func:`split_parquet_on_dask` did: positions of all lines, counts, and where the lines are."""

    positions: pd.DataFrame
    lines: int
    cdrs_rejected: int
    lines_dir: Path
    rejected_dir: Path


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as strings (each partition has its own category set; a file must not depend on it)."""
    return frame.astype(
        {c: "str" for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}, copy=False
    )


def _split_file(
    path: str,
    number: int,
    book: AgreementBook,
    closes: Mapping[str, datetime],
    pick_basis: PickBasis,
    out: str,
) -> pd.DataFrame:
    """One partition on a worker: split the file, write its lines and rejections, return its positions."""
    result = split(pd.read_parquet(path), book, closes=closes, pick_basis=pick_basis)
    _plain(result.lines).to_parquet(Path(out) / "lines" / f"part-{number:05d}.parquet", index=False)
    _plain(result.rejected).to_parquet(Path(out) / "rejected" / f"part-{number:05d}.parquet", index=False)
    positions = Positions()
    positions.add(result)
    table = positions.table()
    table["lines"] = len(result.lines)
    table["rejected"] = len(result.rejected)
    if table.empty:  # the counts must travel even for a partition without lines
        table = pd.DataFrame({**{k: [""] for k in POSITION_KEYS}, **{a: [0] for a in AMOUNTS}})
        table["lines"], table["rejected"] = 0, len(result.rejected)
    table["partition"] = number
    return table


def split_parquet_on_dask(
    directory: Path,
    out: Path,
    book: AgreementBook,
    *,
    closes: Mapping[str, datetime] | None = None,
    pick_basis: PickBasis = "end_date_time",
) -> DaskRun:
    """Split every CDR file of ``directory`` as one Dask task on the default scheduler (e.g. the
    ``distributed.Client`` of a LocalCluster the caller made); lines and rejections go to files under ``out``."""
    require_dask()
    import dask

    closes = dict(closes or {})
    for sub in ("lines", "rejected"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    shared = (
        dask.delayed(book, traverse=False),
        dask.delayed(closes, traverse=False),
    )  # sent once, not per task
    tasks = [
        dask.delayed(_split_file)(str(path), i, *shared, pick_basis, str(out))
        for i, path in enumerate(cdr_files(directory))
    ]
    tables = dask.compute(*tasks)
    parts = pd.concat(tables, ignore_index=True)
    counts = parts.drop_duplicates("partition")
    real = parts[parts["party"] != ""]
    total = Positions()
    positions = (
        real.groupby(list(POSITION_KEYS), sort=True)[list(AMOUNTS)].sum().reset_index()
        if len(real)
        else total.table()
    )
    return DaskRun(
        positions=positions.astype({**{k: object for k in POSITION_KEYS}, **{a: "int64" for a in AMOUNTS}}),
        lines=int(counts["lines"].sum()),
        cdrs_rejected=int(counts["rejected"].sum()),
        lines_dir=out / "lines",
        rejected_dir=out / "rejected",
    )
