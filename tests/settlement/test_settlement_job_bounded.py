"""Issue 15 item 7: ``evhub settle``'s job never holds the period's lines: they are spilled chunk by chunk and
the exports, the content hash and the statements are written bucket by bucket (settlement.period_lines).
Checked against the in-memory run of the same CDRs (settle + write_exports, what the job stored before):
every file byte for byte, every statement's HTML, the stored statements and the summary; with many chunks,
many buckets, lines too many to keep in memory, a rejected CDR, a credit, JPY and CDR ids that HTML and CSV
must escape. Two runs give the same lines. On SQLite and PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import Cdr, SettlementStatement
from settlement.agreement_store import add_agreements, load_book
from settlement.core.cdrs import prepare_cdrs
from settlement.core.run import settle
from settlement.core.statements import build_statement, parties
from settlement.export_files import write_exports
from settlement.job import run_period
from settlement.run_inputs import cdr_table, load_carried, load_closes, load_watermarks, seen_from
from tariffs.rating import rate_pending
from tests.world.agreements import PRICING_NETWORK_AGREEMENTS as AGREEMENTS
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

FILES = ("lines.csv", "rejected.csv", "transfers.csv", "summary.json")
ODD_IDS = ("A&B<1>", 'q"uote', "it's", "comma,id", "zz-last", "00-first", "Ünïcode")


async def _copy(db: Database, uid: str, **changes: Any) -> None:
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.cdr_uid == uid))
        assert cdr is not None
        fields = {
            c.key: getattr(cdr, c.key) for c in Cdr.__table__.columns if c.key not in ("id", "created_at")
        }
        s.add(Cdr(**{**fields, **changes}))


async def _setup(db: Database) -> None:
    await seed_pricing_network(db)
    async with db.session() as s:
        await add_agreements(s, AGREEMENTS)
    for i in range(6):
        await seed_ended_session(
            db, "AMS-01-1", datetime(2026, 10, 3 + i, 9, tzinfo=UTC), 30 + 7 * i, str(5 + i), uid=f"b-{i}"
        )
    await rate_pending(db, ())
    async with db.session() as s:
        uids = list((await s.scalars(select(Cdr.cdr_uid).order_by(Cdr.id))).all())
    for k, odd in enumerate(ODD_IDS):  # copies under ids in every corner of the sort order
        await _copy(db, uids[k % len(uids)], cdr_uid=odd, revision=10 + k)
    await _copy(db, uids[1], cdr_uid="NO-AGREEMENT", currency="USD", revision=30)  # rejected
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.cdr_uid == uids[0]))
        assert cdr is not None
        original, excl = cdr.id, cdr.total_cost_excl_vat
    await _copy(
        db,
        uids[0],
        cdr_uid=f"{uids[0]}-CR",
        is_credit=True,
        credit_of=original,
        total_cost_excl_vat=-excl,
        total_cost_incl_vat=None,
    )


async def _reference(db: Database, folder: Path) -> tuple[Any, dict[str, str]]:
    """The in-memory run of the same CDRs: one split, every line in memory, write_exports."""
    async with db.session() as s:
        table = seen_from(
            await cdr_table(s, until=datetime(2026, 11, 1, tzinfo=UTC)), await load_watermarks(s)
        )
        pure = settle(
            prepare_cdrs(table),
            await load_book(s),
            "2026-10",
            await load_closes(s),
            carried=await load_carried(s),
        )
    return pure, write_exports(pure, folder)


async def test_the_bounded_job_writes_what_the_in_memory_run_writes(db: Database, tmp_path: Path) -> None:
    await _setup(db)
    pure, pure_hashes = await _reference(db, tmp_path / "pure")
    assert pure.summary.cdrs_rejected == 1 and len(pure.lines) > 40
    runs = [
        await run_period(
            db, "2026-10", out_dir=tmp_path / f"job{n}", chunk_rows=3, bucket_lines=7, keep_lines=5
        )
        for n in (1, 2)
    ]
    for job in runs:
        assert job.output_dir is not None
        for name in FILES:
            assert (job.output_dir / name).read_bytes() == (tmp_path / "pure" / name).read_bytes(), name
        # lines.parquet: the same schema and rows, in one row group per bucket
        got, want_rows = (pq.read_table(d / "lines.parquet") for d in (job.output_dir, tmp_path / "pure"))
        assert pq.ParquetFile(job.output_dir / "lines.parquet").num_row_groups > 1
        assert got.schema == want_rows.schema and got.equals(want_rows)
        for label in parties(pure.lines):
            name = next(
                p.name for p in (tmp_path / "pure" / "statements").iterdir() if p.stem == _file(label)
            )
            assert (job.output_dir / "statements" / name).read_bytes() == (
                tmp_path / "pure" / "statements" / name
            ).read_bytes(), label
        assert job.statement_hashes == pure_hashes
        assert job.result.summary == pure.summary
        assert job.result.transfers.equals(pure.transfers)
        assert job.result.lines.empty  # more lines than keep_lines: only in the exports
        want = [
            (label, s.currency, s.net, s.vat, s.gross, len(s.entries))
            for label in parties(pure.lines)
            for s in build_statement(pure.lines, label, "2026-10").sections
        ]
        assert [(s.party, s.currency, s.net, s.vat, s.gross, s.entries) for s in job.statements] == want
        async with db.session() as s:
            stored = (
                await s.execute(
                    select(
                        SettlementStatement.party,
                        SettlementStatement.currency,
                        SettlementStatement.gross,
                        SettlementStatement.content_hash,
                        SettlementStatement.data,
                    )
                    .where(SettlementStatement.run_id == job.run_id)
                    .order_by(SettlementStatement.id)
                )
            ).all()
        assert [(p, c, Decimal(g), h, d["lines"]) for p, c, g, h, d in stored] == [
            (w[0], w[1], w[4], pure_hashes[w[0]], w[5]) for w in want
        ]
    assert runs[0].result.summary.content_hash == runs[1].result.summary.content_hash


async def test_a_small_period_keeps_its_lines_for_the_caller(db: Database, tmp_path: Path) -> None:
    await _setup(db)
    pure, _hashes = await _reference(db, tmp_path / "pure")
    job = await run_period(db, "2026-10", chunk_rows=4, bucket_lines=10)
    assert job.result.lines.reset_index(drop=True).astype(str).equals(pure.lines.astype(str))
    assert job.result.summary == pure.summary


def _file(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)
