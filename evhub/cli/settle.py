"""``evhub settle`` (period settlement, ``explain``) and ``evhub agreements`` (the split agreements)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from evhub import provisioning as prov
from evhub.cli._common import console, fail, print_json, run_with_db, table
from evhub.db.engine import Database

settle_app = typer.Typer(help="Period settlement: split every CDR among CPO, eMSP, hub and partners.")
agreements_app = typer.Typer(
    help="Versioned split agreements (roaming, hub fee, site host).", no_args_is_help=True
)


@settle_app.callback(invoke_without_command=True)
def settle(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option(help="The month to settle, YYYY-MM")] = None,
    engine: Annotated[str, typer.Option(help="pandas (one machine) or dask")] = "pandas",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for CSV, Parquet and HTML exports")] = Path(
        "settlement-out"
    ),
    close: Annotated[bool, typer.Option(help="Close the period: it is never rewritten afterwards")] = False,
) -> None:
    """Settle a period: lines per CDR and party, statements, net positions, exports and content hash."""
    if ctx.invoked_subcommand is not None:
        return
    if period is None:
        fail("--period YYYY-MM is required")
    if engine not in ("pandas", "dask"):
        fail(f"--engine {engine!r}: expected pandas or dask")
    if scheduler and engine != "dask":
        fail("--scheduler needs --engine dask")
    from settlement.job import run_period
    from settlement.periods import parse_period

    try:
        parse_period(period)
    except ValueError as exc:
        fail(f"--period {period!r}: {exc}")

    async def go(db: Database) -> None:
        client_cm = contextlib.nullcontext()
        if scheduler:
            from distributed import Client

            client_cm = Client(scheduler)
        with (
            client_cm,
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar,
        ):
            task = bar.add_task("starting", total=None)
            job = await run_period(
                db,
                period,
                engine=engine,
                out_dir=out,
                close=close,  # type: ignore[arg-type]
                progress=lambda step: bar.update(task, description=step),
            )
        summary = job.result.summary
        if job.replay:
            verdict = "[green]reproduced[/]" if job.reproduced else "[red]DIFFERS from the closing run[/]"
            console.print(
                f"period {job.period} is closed; replayed it: content hash {summary.content_hash} {verdict}"
            )
        else:
            state = "closed" if close else "open"
            console.print(
                f"settled {job.period} (run {job.sequence}, {state}): {summary.cdrs_settled} CDR(s), "
                f"{summary.lines} line(s), {summary.adjustments} adjustment(s), "
                f"{summary.cdrs_rejected} rejected {summary.rejected_by_reason or ''}"
            )
            console.print(f"content hash {summary.content_hash}")
        rows = []
        from settlement.statements import build_statement, parties

        for label in parties(job.result.lines):
            for section in build_statement(job.result.lines, label, job.period).sections:
                rows.append(
                    [
                        label,
                        section.currency,
                        section.net,
                        section.vat,
                        section.gross,
                        job.statement_hashes.get(label, "")[:16],
                    ]
                )
        table(
            f"Statements {job.period}", ["party", "currency", "net", "VAT", "gross", "statement hash"], rows
        )
        if len(job.result.transfers):
            table(
                "Net positions (who pays whom)",
                [str(c) for c in job.result.transfers.columns],
                job.result.transfers.astype(str).values.tolist(),
            )
        if job.output_dir:
            console.print(f"exports in {job.output_dir}")
        if job.replay and not job.reproduced:
            raise typer.Exit(1)

    run_with_db(go)


@settle_app.command("explain")
def explain(cdr_id: Annotated[str, typer.Argument(help="The CDR's id")]) -> None:
    """Show how one CDR was split: its components, the agreements applied and every line."""
    from settlement.cdrs import prepare_cdrs
    from settlement.explain import explain_cdr
    from settlement.store import cdr_table, load_book, load_closes

    async def go(db: Database) -> None:
        async with db.session() as s:
            book, closes, frame = await load_book(s), await load_closes(s), await cdr_table(s)
        if not (frame["cdr_id"] == cdr_id).any():
            fail(f"unknown CDR {cdr_id}")
        print_json(explain_cdr(prepare_cdrs(frame), book, cdr_id, closes))

    run_with_db(go)


@agreements_app.command("add")
def agreements_add(
    file: Annotated[Path, typer.Argument(help="JSON list of agreements (see docs/settlement.md)")],
) -> None:
    """Add agreements or new versions of them. A version in force in a closed period is never changed."""
    from settlement.store import AgreementChangeError, add_agreements

    async def go(db: Database) -> None:
        if not file.is_file():
            fail(f"no such file: {file}")
        items = prov.load_json(file.read_text(encoding="utf-8"), str(file))
        if not isinstance(items, list):
            items = [items]
        try:
            async with db.session() as s:
                added = await add_agreements(s, items)
        except AgreementChangeError as exc:
            fail(str(exc))
        for a in added:
            console.print(f"added {a.kind} agreement {a.ref} valid from {a.valid_from}")

    run_with_db(go)


@agreements_app.command("list")
def agreements_list() -> None:
    """List every agreement version."""
    from settlement.store import load_agreements

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = await load_agreements(s)
        table(
            "Agreements",
            ["agreement", "kind", "valid from", "valid until", "terms"],
            [
                [
                    a.ref,
                    a.kind,
                    a.valid_from,
                    a.valid_until or "",
                    ", ".join(
                        f"{k}={v}"
                        for k, v in a.model_dump(exclude_none=True).items()
                        if k not in ("agreement_id", "version", "kind", "valid_from", "valid_until")
                    ),
                ]
                for a in rows
            ],
        )

    run_with_db(go)
