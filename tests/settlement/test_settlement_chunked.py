"""The faster split, the chunked split and the parquet engines (one process, and Dask with two worker
processes) give today's lines: compared with the frozen pre-optimisation split (reference_split.py) on
hypothesis tables (credits, JPY and BHD, discounts, rounding residues) and on the benchmark's generator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from bench.bench_settlement import make_book as bench_book
from bench.bench_settlement import make_cdrs as bench_cdrs
from settlement.core.accounting_periods import with_credit_terms
from settlement.core.canonical_exports import canonical_table, content_hash
from settlement.core.chunked import Positions, concat_results, frame_chunks, split_chunks
from settlement.core.split import split
from settlement.parquet_engine import positions_from_parquet, split_parquet_on_dask, write_cdr_parts

from . import reference_split
from .testkit import cdr_rows, make_book

BOOK = make_book()
CLOSES = {"2026-09": datetime(2026, 10, 3, tzinfo=UTC)}
BENCH_CLOSES = {"2026-09": datetime(2026, 10, 3, tzinfo=UTC)}


def _same(new, old) -> None:
    """Same lines, rejections and parts: values, dtypes and order (pandas ``equals``) and the content hash."""
    assert new.lines.equals(old.lines)
    assert new.rejected.equals(old.rejected)
    assert new.parts.equals(old.parts)
    assert content_hash(new.lines, new.rejected) == content_hash(old.lines, old.rejected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cdr_rows(n_min=1, n_max=40))
def test_split_is_the_reference_split(cdrs: pd.DataFrame) -> None:
    cdrs = with_credit_terms(cdrs, CLOSES)
    _same(split(cdrs, BOOK, closes=CLOSES), reference_split.split(cdrs, BOOK, closes=CLOSES))
    _same(
        split(cdrs, BOOK, pick_basis="period_start"),
        reference_split.split(cdrs, BOOK, pick_basis="period_start"),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cdr_rows(n_min=1, n_max=40))
def test_chunks_concatenated_are_one_split(cdrs: pd.DataFrame) -> None:
    whole = split(cdrs, BOOK, closes=CLOSES)
    lines, rejected = concat_results(split_chunks(frame_chunks(cdrs, 7), BOOK, closes=CLOSES))
    assert canonical_table(lines).equals(canonical_table(whole.lines))
    assert content_hash(lines, rejected) == content_hash(whole.lines, whole.rejected)
    assert list(lines["cdr_id"].astype(str)) == list(whole.lines["cdr_id"].astype(str))  # row order kept


@pytest.fixture(scope="module")
def generated() -> pd.DataFrame:
    """20,000 CDRs of the benchmark's generator: 10 % JPY, 1 % credits, late CDRs after a closed September,
    per-kWh fees and shares that leave rounding residues, CDRs without a roaming agreement."""
    return bench_cdrs(20_000, seed=7)


@pytest.fixture(scope="module")
def big_book():
    return bench_book()


def _positions(lines: pd.DataFrame) -> pd.DataFrame:
    out = (
        lines.astype({"settlement_period": str, "currency": str, "party": str})
        .groupby(["settlement_period", "currency", "party"], sort=True)[
            ["net_minor", "vat_minor", "gross_minor"]
        ]
        .sum()
        .reset_index()
    )
    return out.astype({"settlement_period": object, "currency": object, "party": object})


def test_generated_period_new_split_chunks_and_positions(generated, big_book) -> None:
    old = reference_split.split(generated, big_book, closes=BENCH_CLOSES)
    new = split(generated, big_book, closes=BENCH_CLOSES)
    _same(new, old)
    assert (generated["currency"] == "JPY").any() and generated["is_credit"].any()
    assert len(old.rejected) and old.lines["is_adjustment"].any()  # rejections and late CDRs are in it
    # rounding residues: the CPO's line is the exact remainder, so the three shares add up to the CDR's total
    assert (
        old.parts["cpo_net"] + old.parts["hub_net"] + old.parts["host_net"] == old.parts["total_net"]
    ).all()

    positions = Positions()
    for result in split_chunks(frame_chunks(generated, 3_000), big_book, closes=BENCH_CLOSES):
        positions.add(result)
    assert positions.lines == len(old.lines)
    assert positions.cdrs_rejected == len(old.rejected)
    table = positions.table()
    pd.testing.assert_frame_equal(table, _positions(old.lines))
    assert (table.groupby(["settlement_period", "currency"])["gross_minor"].sum() == 0).all()


def test_positions_from_parquet_row_groups(generated, big_book, tmp_path: Path) -> None:
    write_cdr_parts(frame_chunks(generated, 8_000), tmp_path / "cdrs", row_group_rows=2_500)
    got = positions_from_parquet(tmp_path / "cdrs", big_book, closes=BENCH_CLOSES)
    old = reference_split.split(generated, big_book, closes=BENCH_CLOSES)
    pd.testing.assert_frame_equal(got.table(), _positions(old.lines))
    assert got.lines == len(old.lines) and got.cdrs_rejected == len(old.rejected)


def test_dask_two_workers_on_parquet_gives_the_pandas_lines(generated, big_book, tmp_path: Path) -> None:
    """Two worker processes (a LocalCluster), one task per parquet file; the lines files they write are the
    pandas split's lines to the cent, and the positions they hand back are its positions."""
    distributed = pytest.importorskip("distributed")
    write_cdr_parts(frame_chunks(generated, 5_000), tmp_path / "cdrs")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="1GiB"
    )
    try:
        with distributed.Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            run = split_parquet_on_dask(tmp_path / "cdrs", tmp_path / "out", big_book, closes=BENCH_CLOSES)
    finally:
        cluster.close()
    old = reference_split.split(generated, big_book, closes=BENCH_CLOSES)
    lines = pd.concat(
        [pd.read_parquet(p) for p in sorted(run.lines_dir.glob("*.parquet"))], ignore_index=True
    )
    rejected = pd.concat(
        [pd.read_parquet(p) for p in sorted(run.rejected_dir.glob("*.parquet"))], ignore_index=True
    )
    assert len(list(run.lines_dir.glob("*.parquet"))) == 4
    assert canonical_table(lines).equals(canonical_table(old.lines))
    assert content_hash(lines, rejected) == content_hash(old.lines, old.rejected)
    assert np.array_equal(lines["net_minor"].to_numpy(), old.lines["net_minor"].to_numpy())  # in order, too
    assert run.lines == len(old.lines) and run.cdrs_rejected == len(old.rejected)
    pd.testing.assert_frame_equal(run.positions, _positions(old.lines))
