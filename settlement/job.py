"""A settlement run end to end: read CDRs and agreements from the database, settle (pure, split with pandas or
Dask), write the exports, store the run and its statements in ``settlement_runs`` / ``settlement_statements``.

Reproducible: the outputs of a period are a pure function of its CDRs and agreements; re-running a closed
period recomputes it (``replay``) and checks the content hash against the stored closing run instead of
rewriting anything. Late CDRs and credits settle in the next open period as adjustments (see
:mod:`settlement.core.accounting_periods`). Every stored run stores the CDRs it rejected in
``settlement_rejections``; those of a closing run are carried forward: every later run tries them again
until one settles them. A run reads the CDRs created before one instant; a closing run closes at that instant
and keeps the highest CDR row it read (``params["cdr_watermark"]``), so a CDR it did not read is late for
its period whatever its ``created_at`` (:func:`settlement.run_inputs.seen_from`).

The CDRs are read in chunks of row ids (:func:`settlement.run_inputs.cdr_chunks`), each prepared and split on
its own (:func:`settlement.core.run.settle_chunk`; a credit's original in another chunk comes along as
context), keeping only the chunk's lines of the period: the database rows and the split's intermediates are
bounded by the chunk, whatever the number of CDRs; the stored results are those of one split of them all
(tests/settlement/test_settlement_job_chunks.py). The period's own lines are still held together for the
canonical exports and the statements.

Exports per run, in ``OUT/PERIOD-rSEQ/``: ``lines.csv`` and ``lines.parquet`` (every line, canonical order),
``rejected.csv`` (the CDRs it could not split, why, and the period that first rejected each),
``transfers.csv`` (net positions after netting), ``summary.json``, and ``statements/PARTY.html`` (printable).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from sqlalchemy import func, select

from kernel import metrics
from kernel.db.engine import Database
from kernel.models import SettlementRejection, SettlementRun, SettlementStatement
from kernel.timeutil import utcnow
from settlement.agreement_store import load_book
from settlement.core.accounting_periods import ensure_open, parse_period
from settlement.core.cdrs import prepare_cdrs
from settlement.core.run import ChunkResult, RunResult, Splitter, finish, settle_chunk, split_with_pandas
from settlement.core.statements import build_statement, parties
from settlement.dask_engine import dask_splitter
from settlement.export_files import statement_hashes, write_exports
from settlement.run_inputs import (
    CDR_COLUMNS,
    WATERMARK,
    CdrChunk,
    cdr_chunks,
    load_carried,
    load_closes,
    load_watermarks,
    parties_by_label,
    seen_from,
)

Progress = Callable[[str], None]

CHUNK_ROWS = 50_000
"""CDRs read, prepared and split at a time (their ORM rows and the split's intermediates are what is bounded)."""


@dataclass(frozen=True)
class JobResult:
    """A finished run (or replay): where it is stored and written, and the computed :class:`RunResult`."""

    run_id: int | None
    period: str
    sequence: int | None
    replay: bool
    reproduced: bool | None  # replay only: the hash equals the closing run's
    result: RunResult
    output_dir: Path | None
    statement_hashes: dict[str, str]


async def run_period(
    db: Database,
    period: str,
    *,
    engine: Literal["pandas", "dask"] = "pandas",
    out_dir: Path | None = None,
    close: bool = False,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> JobResult:
    """Settle ``period`` (``YYYY-MM``). A closed period is replayed and verified, never rewritten.
    Counted in ``evhub_settlement_runs_total`` / ``evhub_settlement_run_failures_total``."""
    try:
        job = await _run_period(
            db, period, engine=engine, out_dir=out_dir, close=close, progress=progress, chunk_rows=chunk_rows
        )
    except Exception:
        metrics.settlement_run(None)
        raise
    metrics.settlement_run("replay" if job.replay else "run")
    return job


async def _run_period(
    db: Database,
    period: str,
    *,
    engine: Literal["pandas", "dask"],
    out_dir: Path | None,
    close: bool,
    progress: Progress | None,
    chunk_rows: int,
) -> JobResult:
    say = progress or (lambda _step: None)
    key = parse_period(period).key
    end = parse_period(period).end
    splitter: Splitter = dask_splitter() if engine == "dask" else split_with_pandas
    say("loading agreements")
    # The run covers the CDRs created before this instant, and a closing run closes at it: a CDR created
    # while the run computes is late for the period (next open period), never one the closing run missed.
    snapshot = utcnow()
    async with db.session() as db_session:
        book = await load_book(db_session)
        closes = await load_closes(db_session)
        carried = await load_carried(db_session)
        watermarks = await load_watermarks(db_session)
        labels = await parties_by_label(db_session)
        closing = await db_session.scalar(
            select(SettlementRun)
            .where(SettlementRun.period == key, SettlementRun.closed_at.is_not(None))
            .order_by(SettlementRun.closed_at)
            .limit(1)
        )
    replay = key in closes
    if not replay:
        ensure_open(key, closes)  # before reading a single CDR

    def compute(chunk: CdrChunk) -> ChunkResult:
        prepared = prepare_cdrs(seen_from(chunk.table, watermarks))
        return settle_chunk(
            prepared, book, key, closes, own_rows=chunk.own, replay=replay, splitter=splitter, carried=carried
        )

    # The CDRs stream in chunks: only one chunk's rows and split intermediates are in memory at a time; each
    # chunk keeps its lines of this period, the row ids of its rejected CDRs and its highest row id.
    parts: list[ChunkResult] = []
    row_of: dict[str, int] = {}
    watermark, considered = 0, 0
    async for chunk in cdr_chunks(db, until=end, created_before=snapshot, chunk_rows=chunk_rows):
        part = await asyncio.to_thread(compute, chunk)
        own = chunk.table.iloc[: chunk.own]
        watermark = max(watermark, int(own["row_id"].max()))
        if len(part.rejected):
            ids = set(part.rejected["cdr_id"].astype(str))
            for uid, row_id in zip(own["cdr_id"].astype(str), own["row_id"], strict=True):
                if uid in ids:
                    row_of[uid] = int(row_id)
        parts.append(ChunkResult(part.lines, part.rejected, part.considered, part.all_lines.iloc[:0]))
        considered += part.considered
        say(f"split {considered} CDR(s) with {engine}")
    if not parts:  # no CDR: the run of an empty table
        empty = pd.DataFrame(columns=list(CDR_COLUMNS))
        parts.append(await asyncio.to_thread(compute, CdrChunk(empty, 0)))
    result = await asyncio.to_thread(finish, key, parts)
    del parts
    if replay:
        folder = out_dir / f"{key}-replay" if out_dir else None
        hashes = await asyncio.to_thread(write_exports, result, folder) if folder else {}
        reproduced = closing is not None and closing.content_hash == result.summary.content_hash
        return JobResult(None, key, None, True, reproduced, result, folder, hashes)

    async with db.session() as db_session:
        sequence = (
            int(
                await db_session.scalar(
                    select(func.coalesce(func.max(SettlementRun.sequence), 0)).where(
                        SettlementRun.period == key
                    )
                )
                or 0
            )
            + 1
        )
    folder = out_dir / f"{key}-r{sequence}" if out_dir else None
    say("writing exports")
    hashes = await asyncio.to_thread(write_exports, result, folder) if folder else statement_hashes(result)
    say("storing the run")
    now = utcnow()
    async with db.session() as db_session:
        run = SettlementRun(
            period=key,
            sequence=sequence,
            status="closed" if close else "open",
            engine=engine,
            content_hash=result.summary.content_hash,
            cdr_count=result.summary.cdrs_settled,
            params=_jsonable({**result.summary.as_dict(), WATERMARK: watermark}),
            finished_at=now,
            closed_at=snapshot if close else None,
            output_dir=str(folder) if folder else None,
        )
        db_session.add(run)
        await db_session.flush()
        for label in parties(result.lines):
            statement = build_statement(result.lines, label, key)
            for section in statement.sections:
                db_session.add(
                    SettlementStatement(
                        run_id=run.id,
                        party=label,
                        party_id=labels.get(label),
                        currency=section.currency,
                        net=section.net,
                        vat=section.vat,
                        gross=section.gross,
                        content_hash=hashes.get(label, ""),
                        data={"lines": len(section.entries)},
                    )
                )
        db_session.add_all(
            SettlementRejection(
                run_id=run.id,
                cdr_id=int(row_of[str(r.cdr_id)]),
                reason=str(r.reason),
                service_period=str(r.service_period),
                first_rejected_in=str(r.first_rejected_in),
            )
            for r in result.rejected.itertuples(index=False)
        )
        run_id = run.id
    return JobResult(run_id, key, sequence, False, None, result, folder, hashes)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


__all__ = ["JobResult", "run_period"]
