"""pandas and dask (on a LocalCluster) give the identical split."""

from __future__ import annotations

import dask.dataframe as dd
import pytest
from hypothesis import HealthCheck, given, settings

from settlement.dask_engine import split_dask_computed
from settlement.exports import canonical_table, content_hash
from settlement.split import split

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
