"""Issue 15 item 7: the settlement job reads and splits the CDRs in chunks (bounded memory) and stores exactly
what one split of all of them stores — files byte for byte, the run's summary and watermark, statements and
rejections — with credits whose original is in another chunk, a rejected CDR, a closed period replayed in
chunks and late CDRs in the next period. On SQLite and PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import Cdr, SettlementRejection, SettlementRun, SettlementStatement
from settlement.agreement_store import add_agreements, load_book
from settlement.core.cdrs import prepare_cdrs
from settlement.core.run import settle
from settlement.job import JobResult, run_period
from settlement.run_inputs import cdr_table, load_carried, load_closes, load_watermarks, seen_from
from tariffs.rating import rate_pending
from tests.world.agreements import PRICING_NETWORK_AGREEMENTS as AGREEMENTS
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

WHOLE = 10**9  # one chunk: the job as it was, every CDR in one table
FILES = ("lines.csv", "lines.parquet", "rejected.csv", "transfers.csv", "summary.json")


async def _copy(db: Database, uid: str, **changes: Any) -> None:
    """Store a copy of CDR ``uid`` with ``changes`` (a credit, another currency)."""
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.cdr_uid == uid))
        assert cdr is not None
        fields = {
            c.key: getattr(cdr, c.key) for c in Cdr.__table__.columns if c.key not in ("id", "created_at")
        }
        s.add(Cdr(**{**fields, **changes}))


async def _credit(db: Database, uid: str) -> None:
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.cdr_uid == uid))
        assert cdr is not None
        original, excl, incl = cdr.id, cdr.total_cost_excl_vat, cdr.total_cost_incl_vat
    await _copy(
        db,
        uid,
        cdr_uid=f"{uid}-CR",
        is_credit=True,
        credit_of=original,
        total_cost_excl_vat=-excl,
        total_cost_incl_vat=None if incl is None else -incl,
    )


async def _setup(db: Database) -> None:
    await seed_pricing_network(db)
    async with db.session() as s:
        await add_agreements(s, AGREEMENTS)
    for i in range(5):
        await seed_ended_session(
            db, "AMS-01-1", datetime(2026, 10, 5 + i, 9, tzinfo=UTC), 45, str(8 + i), uid=f"o-{i}"
        )
    await rate_pending(db, ())
    uids = await _uids(db)
    await _copy(db, uids[1], cdr_uid="NO-AGREEMENT", currency="USD", revision=7)  # rejected: no USD terms
    await _credit(db, uids[0])  # a credit in the same period, its original chunks away


async def _uids(db: Database) -> list[str]:
    async with db.session() as s:
        return list((await s.scalars(select(Cdr.cdr_uid).order_by(Cdr.id))).all())


async def _stored(db: Database, run_id: int | None) -> tuple[Any, ...]:
    async with db.session() as s:
        run = await s.get(SettlementRun, run_id)
        assert run is not None
        statements = (
            await s.execute(
                select(
                    SettlementStatement.party,
                    SettlementStatement.party_id,
                    SettlementStatement.currency,
                    SettlementStatement.net,
                    SettlementStatement.vat,
                    SettlementStatement.gross,
                    SettlementStatement.content_hash,
                    SettlementStatement.data,
                )
                .where(SettlementStatement.run_id == run_id)
                .order_by(SettlementStatement.party, SettlementStatement.currency)
            )
        ).all()
        rejections = (
            await s.execute(
                select(
                    SettlementRejection.cdr_id,
                    SettlementRejection.reason,
                    SettlementRejection.service_period,
                    SettlementRejection.first_rejected_in,
                )
                .where(SettlementRejection.run_id == run_id)
                .order_by(SettlementRejection.cdr_id)
            )
        ).all()
    return (
        run.content_hash,
        run.cdr_count,
        run.params,
        [tuple(r) for r in statements],
        [tuple(r) for r in rejections],
    )


def _same_files(a: JobResult, b: JobResult) -> None:
    assert a.output_dir is not None and b.output_dir is not None
    for name in FILES:
        assert (a.output_dir / name).read_bytes() == (b.output_dir / name).read_bytes(), name
    assert a.statement_hashes == b.statement_hashes and a.statement_hashes


async def test_the_chunked_job_stores_what_the_whole_table_run_stores(db: Database, tmp_path: Path) -> None:
    await _setup(db)
    whole = await run_period(db, "2026-10", out_dir=tmp_path / "whole", chunk_rows=WHOLE)
    assert whole.result.summary.cdrs_rejected == 1 and whole.result.summary.cdrs_settled == 6
    # the pure run over the table as the job read it before chunks: the same hash and summary
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
    assert pure.summary == whole.result.summary
    for rows in (1, 2, 3):
        chunked = await run_period(db, "2026-10", out_dir=tmp_path / f"c{rows}", chunk_rows=rows)
        _same_files(whole, chunked)
        assert chunked.result.summary == whole.result.summary
        assert await _stored(db, chunked.run_id) == await _stored(db, whole.run_id)


async def test_a_closed_period_replays_in_chunks_and_late_cdrs_and_credits_settle_next(
    db: Database, tmp_path: Path
) -> None:
    await _setup(db)
    closing = await run_period(db, "2026-10", out_dir=tmp_path / "close", close=True, chunk_rows=2)
    replay = await run_period(db, "2026-10", out_dir=tmp_path / "replay", chunk_rows=1)
    assert replay.replay and replay.reproduced
    # after the close: a late October CDR and the credit of an October CDR, both adjustments in November
    await seed_ended_session(db, "AMS-01-2", datetime(2026, 10, 30, 9, tzinfo=UTC), 30, "5", uid="late")
    await rate_pending(db, ())
    await _credit(db, (await _uids(db))[2])
    whole = await run_period(db, "2026-11", out_dir=tmp_path / "whole", chunk_rows=WHOLE)
    assert whole.result.summary.adjustments == 2
    for rows in (1, 4):
        chunked = await run_period(db, "2026-11", out_dir=tmp_path / f"c{rows}", chunk_rows=rows)
        _same_files(whole, chunked)
        assert await _stored(db, chunked.run_id) == await _stored(db, whole.run_id)
    again = await run_period(db, "2026-10", out_dir=tmp_path / "again", chunk_rows=3)
    assert again.reproduced  # (it reads the two CDRs after the close too, late for October)
    assert again.result.summary.content_hash == closing.result.summary.content_hash


USD_FEE = {
    "kind": "hub_fee",
    "agreement_id": "hub-fee-usd",
    "version": 1,
    "valid_from": "2026-11-01",
    "hub": "NL*HUB",
    "currency": "USD",
    "percentage": "0.05",
    "fixed_per_session": "0.10",
    "vat_rates": {"NLD": "0.21"},
}


async def test_a_credit_whose_original_is_in_another_chunk_takes_the_original_terms(
    db: Database, tmp_path: Path
) -> None:
    """The original (rejected in October, carried, settled in November once a USD hub fee exists) and its
    credit (after November closed; the fee changed from December) are in different chunks: the credit still
    learns its original's settlement period, so it mirrors it with the November terms, as in one table."""
    await _setup(db)
    await run_period(db, "2026-10", close=True, chunk_rows=2)
    async with db.session() as s:
        await add_agreements(s, [USD_FEE])
    november = await run_period(db, "2026-11", close=True, chunk_rows=1)
    assert "NO-AGREEMENT" in set(november.result.lines["cdr_id"].astype(str))
    async with db.session() as s:
        await add_agreements(s, [dict(USD_FEE, version=2, valid_from="2026-12-01", percentage="0.20")])
    await _credit(db, "NO-AGREEMENT")
    whole = await run_period(db, "2026-12", out_dir=tmp_path / "whole", chunk_rows=WHOLE)
    fee = whole.result.lines[whole.result.lines["kind"] == "hub_fee"]
    assert list(fee["cdr_id"].astype(str)) == ["NO-AGREEMENT-CR"]
    assert list(fee["agreement_version"]) == [1]
    chunked = await run_period(db, "2026-12", out_dir=tmp_path / "c1", chunk_rows=1)
    _same_files(whole, chunked)
    assert await _stored(db, chunked.run_id) == await _stored(db, whole.run_id)
