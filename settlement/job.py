"""A settlement run end to end: read CDRs and agreements from the database, split (pure, pandas or Dask),
write the exports, store the run and its statements.

Reproducible: the outputs of a period are a pure function of its CDRs and agreements; re-running a closed
period recomputes it (``replay``) and checks the content hash against the stored closing run instead of
rewriting anything. Late CDRs and credits settle in the next open period as adjustments (see
:mod:`settlement.periods`).

Exports per run, in ``OUT/PERIOD-rSEQ/``: ``lines.csv`` and ``lines.parquet`` (every line, canonical order),
``transfers.csv`` (net positions after netting), ``summary.json``, and ``statements/PARTY.html`` (printable).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select

from kernel import metrics
from kernel.db.engine import Database
from kernel.models import SettlementRun, SettlementStatement
from kernel.timeutil import utcnow
from settlement.cdrs import prepare_cdrs
from settlement.exports import lines_csv, lines_parquet, statement_html
from settlement.periods import parse_period
from settlement.run import SettlementRun as RunResult
from settlement.run import settle
from settlement.statements import build_statement, parties
from settlement.store import cdr_table, load_book, load_closes, parties_by_label

Progress = Callable[[str], None]


@dataclass(frozen=True)
class JobResult:
    run_id: int | None
    period: str
    sequence: int | None
    replay: bool
    reproduced: bool | None  # replay only: the hash equals the closing run's
    result: RunResult
    output_dir: Path | None
    statement_hashes: dict[str, str]


def _party_file(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)


def write_exports(result: RunResult, folder: Path) -> dict[str, str]:
    """Write the run's files; returns each party's statement hash (sha256 of its HTML)."""
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lines.csv").write_bytes(lines_csv(result.lines))
    (folder / "lines.parquet").write_bytes(lines_parquet(result.lines))
    result.transfers.to_csv(folder / "transfers.csv", index=False, lineterminator="\n")
    (folder / "summary.json").write_text(
        json.dumps(result.summary.as_dict(), indent=2, sort_keys=True) + "\n"
    )
    statements = folder / "statements"
    statements.mkdir(exist_ok=True)
    hashes: dict[str, str] = {}
    for label in parties(result.lines):
        html = statement_html(build_statement(result.lines, label, result.period))
        (statements / f"{_party_file(label)}.html").write_text(html, encoding="utf-8")
        hashes[label] = hashlib.sha256(html.encode("utf-8")).hexdigest()
    return hashes


async def run_period(
    db: Database,
    period: str,
    *,
    engine: Literal["pandas", "dask"] = "pandas",
    out_dir: Path | None = None,
    close: bool = False,
    progress: Progress | None = None,
) -> JobResult:
    """Settle ``period`` (``YYYY-MM``). A closed period is replayed and verified, never rewritten.
    Counted in ``evhub_settlement_runs_total`` / ``evhub_settlement_run_failures_total``."""
    try:
        job = await _run_period(db, period, engine=engine, out_dir=out_dir, close=close, progress=progress)
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
) -> JobResult:
    say = progress or (lambda _step: None)
    key = parse_period(period).key
    end = parse_period(period).end
    say("loading CDRs and agreements")
    async with db.session() as s:
        book = await load_book(s)
        closes = await load_closes(s)
        table = await cdr_table(s, until=end)
        labels = await parties_by_label(s)
        closing = await s.scalar(
            select(SettlementRun)
            .where(SettlementRun.period == key, SettlementRun.closed_at.is_not(None))
            .order_by(SettlementRun.closed_at)
            .limit(1)
        )
    replay = key in closes
    say(f"splitting {len(table)} CDR(s) with {engine}")

    def compute() -> RunResult:
        prepared = prepare_cdrs(table)
        return settle(prepared, book, key, closes, replay=replay, engine=engine)

    result = await asyncio.to_thread(compute)
    if replay:
        folder = out_dir / f"{key}-replay" if out_dir else None
        hashes = await asyncio.to_thread(write_exports, result, folder) if folder else {}
        reproduced = closing is not None and closing.content_hash == result.summary.content_hash
        return JobResult(None, key, None, True, reproduced, result, folder, hashes)

    async with db.session() as s:
        sequence = (
            int(
                await s.scalar(
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
    hashes = await asyncio.to_thread(write_exports, result, folder) if folder else _statement_hashes(result)
    say("storing the run")
    now = utcnow()
    async with db.session() as s:
        run = SettlementRun(
            period=key,
            sequence=sequence,
            status="closed" if close else "open",
            engine=engine,
            content_hash=result.summary.content_hash,
            cdr_count=result.summary.cdrs_settled,
            params=_jsonable(result.summary.as_dict()),
            finished_at=now,
            closed_at=now if close else None,
            output_dir=str(folder) if folder else None,
        )
        s.add(run)
        await s.flush()
        for label in parties(result.lines):
            statement = build_statement(result.lines, label, key)
            for section in statement.sections:
                s.add(
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
        run_id = run.id
    return JobResult(run_id, key, sequence, False, None, result, folder, hashes)


def _statement_hashes(result: RunResult) -> dict[str, str]:
    import hashlib

    return {
        label: hashlib.sha256(
            statement_html(build_statement(result.lines, label, result.period)).encode()
        ).hexdigest()
        for label in parties(result.lines)
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


__all__ = ["JobResult", "run_period", "write_exports"]
