"""``evhub settle`` (period settlement, ``explain``) and ``evhub agreements`` (the split agreements)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from evhub import provisioning as prov
from evhub.cli._common import console, fail, print_json, reported_errors, run_with_db, table
from evhub.cli._lookup import resolve_prefix
from kernel.db.engine import Database

settle_app = typer.Typer(help="Period settlement: split every CDR among CPO, eMSP, hub and partners.")
agreements_app = typer.Typer(
    help="Versioned split agreements (roaming, hub fee, site host).", no_args_is_help=True
)
JSON_OPTION = typer.Option("--json", help="Print JSON instead of tables")


def _check_out_dir(out: Path) -> None:
    """``--out`` must be a folder or a path one can be made at (checked before anything is computed)."""
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        fail(f"--out {out}: {parent} is not a folder")


@contextlib.contextmanager
def _scheduler(address: str | None) -> Iterator[None]:
    """Connect to the Dask scheduler at ``address`` for the run (nothing without one)."""
    if not address:
        yield
        return
    from distributed import Client

    try:
        client = Client(address)
    except (OSError, TimeoutError, ValueError) as exc:
        fail(f"--scheduler {address}: cannot connect to the Dask scheduler: {exc}")
    with client:
        yield


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    if not enabled:
        yield lambda _step: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda step: bar.update(task, description=step)


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
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Settle a period: lines per CDR and party, statements, net positions, exports and content hash."""
    if ctx.invoked_subcommand is not None:
        return
    if period is None:
        fail("--period YYYY-MM is required")
    if engine not in ("pandas", "dask"):
        fail(f"--engine {engine!r}: expected pandas or dask")
    engine_name: Literal["pandas", "dask"] = "dask" if engine == "dask" else "pandas"
    if scheduler and engine != "dask":
        fail("--scheduler needs --engine dask")
    if engine == "dask":
        from settlement.dask_engine import DaskMissing, require_dask

        try:
            require_dask()
        except DaskMissing as exc:
            fail(str(exc))
    from settlement.core.accounting_periods import parse_period
    from settlement.job import run_period

    try:
        parsed = parse_period(period)
        period = parsed.key
        _ = parsed.start, parsed.end  # year 0 and 9999-12 are not months a run can cover
    except ValueError:
        fail(f"--period {period!r}: expected a month as YYYY-MM, e.g. 2026-10")
    _check_out_dir(out)

    async def go(db: Database) -> None:
        with _scheduler(scheduler), _progress(not as_json) as say:
            try:
                job = await run_period(
                    db,
                    period,
                    engine=engine_name,
                    out_dir=out,
                    close=close,
                    progress=say,
                )
            except OSError as exc:  # the exports are written before the run is stored: nothing half-written
                if exc.filename is None:
                    raise
                fail(f"--out {out}: cannot write the exports: {exc.strerror or exc} ({exc.filename})")
        statements = [
            {
                "party": section.party,
                "currency": section.currency,
                "net": section.net,
                "vat": section.vat,
                "gross": section.gross,
                "statement_hash": job.statement_hashes.get(section.party, ""),
            }
            for section in job.statements  # each party's statement per currency (the lines are in the exports)
        ]
        transfers = job.result.transfers.astype(str).to_dict(orient="records")
        if as_json:
            print_json(
                {
                    "period": job.period,
                    "run": job.sequence,
                    "closed": bool(close) and not job.replay,
                    "replay": job.replay,
                    "reproduced": job.reproduced,
                    "summary": job.result.summary.as_dict(),
                    "statements": statements,
                    "transfers": transfers,
                    "exports": str(job.output_dir) if job.output_dir else None,
                }
            )
        else:
            _print_run(job, close, statements)
        if job.replay and not job.reproduced:
            raise typer.Exit(1)

    run_with_db(go)


def _print_run(job: Any, close: bool, statements: list[dict[str, Any]]) -> None:
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
    table(
        f"Statements {job.period}",
        ["party", "currency", "net", "VAT", "gross", "statement hash"],
        [
            [r["party"], r["currency"], r["net"], r["vat"], r["gross"], r["statement_hash"][:16]]
            for r in statements
        ],
    )
    if len(job.result.transfers):
        table(
            "Net positions (who pays whom)",
            [str(c) for c in job.result.transfers.columns],
            job.result.transfers.astype(str).values.tolist(),
        )
    if job.output_dir:
        console.print(f"exports in {job.output_dir}")


@settle_app.command("explain")
def explain(
    cdr_id: Annotated[str, typer.Argument(metavar="CDR_ID", help="The CDR's id, or a unique prefix of it")],
) -> None:
    """Show how one CDR was split: its components, the agreements applied and every line."""
    from kernel.models import Cdr
    from settlement.agreement_store import load_book
    from settlement.core.cdrs import prepare_cdrs
    from settlement.core.explain import explain_cdr
    from settlement.run_inputs import cdr_table, load_carried, load_closes

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            uid = await resolve_prefix(db_session, Cdr.cdr_uid, cdr_id, "CDR")
            book, closes, frame, carried = (
                await load_book(db_session),
                await load_closes(db_session),
                await cdr_table(db_session),
                await load_carried(db_session),
            )
        # a CDR closed runs rejected is explained as the next open period tries it
        print_json(explain_cdr(prepare_cdrs(frame), book, uid, closes, carried))

    run_with_db(go)


@agreements_app.command("add")
def agreements_add(
    file: Annotated[Path, typer.Argument(help="JSON list of agreements (see docs/settlement.md)")],
) -> None:
    """Add agreements or new versions of them. A version in force in a closed period is never changed."""
    from settlement.agreement_store import AgreementChangeError, add_agreements

    if not file.is_file():
        fail(f"no such file: {file}")
    with reported_errors():
        items = prov.load_json(file.read_text(encoding="utf-8"), str(file))
    if not isinstance(items, list):
        items = [items]
    if not items:
        fail(f"{file}: no agreements in it")

    async def go(db: Database) -> None:
        try:
            async with db.session() as db_session:
                added = await add_agreements(db_session, items)
        except AgreementChangeError as exc:
            fail(f"{file}: {exc}")
        for a in added:
            console.print(f"added {a.kind} agreement {a.ref} valid from {a.valid_from}")

    run_with_db(go)


@agreements_app.command("list")
def agreements_list(as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """List every agreement version."""
    from settlement.agreement_store import load_agreements
    from settlement.core.agreements import dump_agreements

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = await load_agreements(db_session)
        if as_json:
            print_json(dump_agreements(rows))
            return
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
                        for k, v in a.model_dump(mode="json", exclude_none=True).items()
                        if k not in ("agreement_id", "version", "kind", "valid_from", "valid_until")
                    ),
                ]
                for a in rows
            ],
        )

    run_with_db(go)
