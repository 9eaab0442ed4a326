"""The billing benchmark's fast loader (bench.billing_db_copy) writes the rows of the row-by-row loader.

The same generated table (the settlement benchmark's CDRs with billing's columns, credit CDRs among them) is
loaded with :func:`bench.bench_billing_db.load_cdrs` over :func:`bench_rows` and, after the CDRs and sessions are
deleted, with :func:`bench.billing_db_copy.copy_table`; every column of every session and CDR is the same,
the holder columns included (each CDR's token's fleet, driver and vehicle, recorded). COPY text streams are
PostgreSQL's, so on SQLite only the credit matching is checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from bench.bench_billing import billing_table
from bench.bench_billing_db import bench_rows, load_cdrs, seed_bench_world
from bench.bench_settlement import make_cdrs
from bench.billing_db_copy import copy_table, matched_credits
from kernel.db.engine import Database


def test_a_credit_cdr_credits_its_fleets_latest_cdr_not_credited_yet() -> None:
    invoice = np.array([0, 1, 0, 0, 1, 0, 0, 2])
    credit = np.array([False, False, False, True, True, True, False, True])
    keep, source = matched_credits(invoice, credit)
    assert keep.tolist() == [True, True, True, True, True, False, True, False]
    assert source.tolist() == [0, 1, 2, 2, 1, 5, 6, 7]


async def _rows(db: Database) -> dict[str, list[Any]]:
    async with db.engine.connect() as conn:
        return {
            name: [tuple(r) for r in (await conn.execute(text(f"SELECT * FROM {name} ORDER BY id"))).all()]
            for name in ("sessions", "cdrs")
        }


async def test_the_copy_loader_writes_the_row_loaders_sessions_and_cdrs(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("COPY text streams are PostgreSQL's")
    table, present = billing_table(make_cdrs(600))
    world, location_ids = await seed_bench_world(db, table, present)
    assert table.is_credit.any()
    by_rows = await load_cdrs(db, world, bench_rows(table, world, location_ids))
    expected = await _rows(db)
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM cdrs"))
        await conn.execute(text("DELETE FROM sessions"))
    assert await copy_table(db, world.tokens[""], table, location_ids, world) == by_rows
    got = await _rows(db)
    assert len(got["cdrs"]) == by_rows > 500
    assert got == expected
    async with db.engine.connect() as conn:
        unrecorded = await conn.scalar(
            text("SELECT count(*) FROM cdrs WHERE NOT holder_recorded OR fleet_id IS NULL OR vehicle IS NULL")
        )
    assert unrecorded == 0
