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
(tests/settlement/test_settlement_job_chunks.py). The period's lines are never held together either: each
chunk's are spilled to disk and folded into running totals, and the canonical exports, the content hash and
the statements are written from the spill bucket by bucket (:mod:`settlement.period_lines`); a job's ``result.lines`` has
them only for a period of at most ``period_lines.KEEP_LINES`` lines (else none: they are in the exports), and
``JobResult.statements`` has each statement's totals.

Exports per run, in ``OUT/PERIOD-rSEQ/``: ``lines.csv`` and ``lines.parquet`` (every line, canonical order),
``rejected.csv`` (the CDRs it could not split, why, and the period that first rejected each),
``transfers.csv`` (net positions after netting), ``summary.json``, and ``statements/PARTY.html`` (printable).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
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
from settlement.core.chunked import concat_frames
from settlement.core.run import ChunkResult, RunResult, Splitter, settle_chunk, split_with_pandas
from settlement.dask_engine import dask_splitter
from settlement.period_lines import BUCKET_LINES, KEEP_LINES, PeriodLines, StatementTotal
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
    statements: tuple[StatementTotal, ...] = ()
    """Each party's statement per currency: totals and number of entries (``result.lines`` has the lines only
    for a small period: they are in the exports, ``lines.csv`` / ``lines.parquet``, never all in memory)."""


async def run_period(
    db: Database,
    period: str,
    *,
    engine: Literal["pandas", "dask"] = "pandas",
    out_dir: Path | None = None,
    close: bool = False,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
    spill_dir: Path | None = None,
    bucket_lines: int = BUCKET_LINES,
    keep_lines: int = KEEP_LINES,
) -> JobResult:
    """Settle ``period`` (``YYYY-MM``). A closed period is replayed and verified, never rewritten.
    ``spill_dir``: where the period's lines are spilled (a temporary folder in it, removed at the end; default:
    the system's); ``bucket_lines`` / ``keep_lines``: see :mod:`settlement.period_lines`.
    Counted in ``evhub_settlement_runs_total`` / ``evhub_settlement_run_failures_total``."""
    try:
        job = await _run_period(
            db,
            period,
            engine=engine,
            out_dir=out_dir,
            close=close,
            progress=progress,
            chunk_rows=chunk_rows,
            spill_dir=spill_dir,
            bucket_lines=bucket_lines,
            keep_lines=keep_lines,
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
    spill_dir: Path | None,
    bucket_lines: int,
    keep_lines: int,
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

    folder: Path | None = None
    sequence: int | None = None
    if replay:
        folder = out_dir / f"{key}-replay" if out_dir else None
    else:
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
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails before any CDR is read

    # The CDRs stream in chunks: only one chunk's rows and split intermediates are in memory at a time; each
    # chunk's lines of this period go to a spill file and into the running totals (PeriodLines), its
    # rejections (few) are kept with their row ids, and its highest row id.
    work = Path(tempfile.mkdtemp(prefix=f"evhub-settle-{key}-", dir=spill_dir))
    store = PeriodLines(key, work, bucket_lines=bucket_lines, keep_lines=keep_lines)
    rejected_parts: list[pd.DataFrame] = []
    row_of: dict[str, int] = {}
    watermark, considered = 0, 0
    try:
        async for chunk in cdr_chunks(db, until=end, created_before=snapshot, chunk_rows=chunk_rows):
            part = await asyncio.to_thread(compute, chunk)
            own = chunk.table.iloc[: chunk.own]
            watermark = max(watermark, int(own["row_id"].max()))
            if len(part.rejected):
                ids = set(part.rejected["cdr_id"].astype(str))
                for uid, row_id in zip(own["cdr_id"].astype(str), own["row_id"], strict=True):
                    if uid in ids:
                        row_of[uid] = int(row_id)
            await asyncio.to_thread(store.add, part.lines)
            rejected_parts.append(part.rejected)
            considered += part.considered
            say(f"split {considered} CDR(s) with {engine}")
        if not rejected_parts:  # no CDR: the run of an empty table
            empty = pd.DataFrame(columns=list(CDR_COLUMNS))
            part = await asyncio.to_thread(compute, CdrChunk(empty, 0))
            store.add(part.lines)
            rejected_parts.append(part.rejected)
        rejected = concat_frames(rejected_parts)
        say("writing exports" if folder else "hashing the statements")
        outputs = await asyncio.to_thread(store.finish, rejected, considered, folder)
    finally:
        shutil.rmtree(store.work_dir, ignore_errors=True)
    result, hashes = outputs.result, outputs.statement_hashes
    if replay:
        reproduced = closing is not None and closing.content_hash == result.summary.content_hash
        return JobResult(None, key, None, True, reproduced, result, folder, hashes, outputs.statements)

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
        db_session.add_all(
            SettlementStatement(
                run_id=run.id,
                party=s.party,
                party_id=labels.get(s.party),
                currency=s.currency,
                net=s.net,
                vat=s.vat,
                gross=s.gross,
                content_hash=hashes.get(s.party, ""),
                data={"lines": s.entries},
            )
            for s in outputs.statements
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
    return JobResult(run_id, key, sequence, False, None, result, folder, hashes, outputs.statements)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


__all__ = ["JobResult", "run_period"]
