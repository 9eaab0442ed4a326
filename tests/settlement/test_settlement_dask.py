"""pandas and dask (on a LocalCluster) give the identical split; without the ``evhub[dask]`` extra, choosing
the Dask engine is one line saying how to install it, and nothing else needs dask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from evhub.cli import app
from settlement.core.canonical_exports import canonical_table, content_hash
from settlement.core.run import settle
from settlement.core.split import split
from settlement.dask_engine import DASK_MISSING, DaskMissing, dask_splitter, split_dask_computed

from .testkit import cdr_rows, make_book

distributed = pytest.importorskip("distributed")
BOOK = make_book()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cdr_rows(n_min=5, n_max=40))
def test_pandas_and_dask_agree(client, cdrs):
    expected = split(cdrs, BOOK)
    ddf = dd.from_pandas(cdrs, npartitions=3, sort=False)
    lines, rejected = split_dask_computed(ddf, BOOK)
    assert content_hash(lines) == content_hash(expected.lines)
    assert canonical_table(lines).equals(canonical_table(expected.lines))
    assert sorted(rejected["cdr_id"]) == sorted(expected.rejected["cdr_id"])


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cdr_rows(n_min=5, n_max=40))
def test_a_run_split_on_dask_is_the_pandas_run(client, cdrs):
    """The Splitter a job uses for ``engine="dask"`` gives the run pandas gives: same lines, same hash."""
    on_pandas = settle(cdrs, BOOK, "2026-10")
    on_dask = settle(cdrs, BOOK, "2026-10", splitter=dask_splitter(partitions=3))
    assert on_dask.summary == on_pandas.summary
    assert content_hash(on_dask.all_lines) == content_hash(on_pandas.all_lines)


@pytest.mark.parametrize("missing", ["dask", "distributed"])
def test_settle_with_dask_missing_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: str
) -> None:
    """Without the extra, ``--engine dask`` says how to install it (``sys.modules[name] = None`` makes the
    real ``import`` raise ImportError, as on a machine without the package)."""
    monkeypatch.setitem(sys.modules, missing, None)
    for name in [m for m in sys.modules if m.startswith(f"{missing}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setenv("EVHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    args = ["settle", "--period", "2026-10", "--engine", "dask", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {DASK_MISSING}"


def test_split_on_dask_missing_raises_dask_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    with pytest.raises(DaskMissing, match=r"pip install 'evhub\[dask\]'"):
        settle(pd.DataFrame(), BOOK, "2026-10", splitter=dask_splitter())  # refused before the table is read


def test_nothing_imports_dask_unless_chosen() -> None:
    """The CLI, the settlement job and a pandas run load without dask or distributed installed."""
    code = (
        "import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None\n"
        "import evhub.cli, settlement.job, settlement.core.run\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
