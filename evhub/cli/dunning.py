"""``evhub dunning run|status|steps`` and ``evhub issuers dunning KEY`` — dunning of unpaid invoices.

``issuers dunning KEY --file schedule.json`` stores an issuer's schedule (validated by billing's core; ``--show``
prints it, ``--default`` goes back to the default one); ``dunning run [--today DATE]`` does the steps due (what
``evhub serve`` does hourly); ``dunning status`` shows each account's outstanding and overdue amounts, state
(ok / overdue / limited / blocked) and last step; ``dunning steps NUMBER`` the steps done for one invoice. Bad
input is one ``error:`` line and exit 1.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

import billing
from evhub.cli._common import console, fail, print_json, run_with_db, table
from evhub.cli.billing import issuers_app
from kernel.db.engine import Database

dunning_app = typer.Typer(
    help="Dunning: reminders, holds and fees for unpaid invoices.", no_args_is_help=True
)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--today {text!r} is not a date (YYYY-MM-DD)")


def _step_item(step: billing.StepView) -> dict[str, Any]:
    return {
        "invoice": step.invoice,
        "key": step.key,
        "rule": step.rule,
        "action": step.action,
        "due_on": step.due_on.isoformat(),
        "done_at": step.done_at.isoformat(),
        "detail": step.detail,
    }


def _account_item(status: billing.AccountDunning) -> dict[str, Any]:
    return {
        "account_id": status.account_id,
        "issuer": status.issuer,
        "kind": status.kind,
        "buyer": status.buyer,
        "currency": status.currency,
        "outstanding": status.outstanding,
        "overdue": status.overdue,
        "state": status.state,
        "held_for": list(status.held_for),
        "last_step": _step_item(status.last_step) if status.last_step else None,
    }


@issuers_app.command("dunning")
def issuers_dunning(
    key: Annotated[str, typer.Argument(help="Issuer key")],
    file: Annotated[Path | None, typer.Option("--file", help="The schedule (JSON) to store")] = None,
    show: Annotated[bool, typer.Option("--show", help="Print the issuer's schedule (JSON)")] = False,
    default: Annotated[bool, typer.Option("--default", help="Go back to the default schedule")] = False,
) -> None:
    """Set (``--file``), reset (``--default``) or show (``--show``) an issuer's dunning schedule."""
    if sum((file is not None, show, default)) != 1:
        fail("give one of --file, --show or --default")
    data: Any = None
    if file is not None:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}")
        except (ValueError, UnicodeDecodeError) as exc:
            fail(f"{file} is not JSON: {exc}")

    async def go(db: Database) -> None:
        async with db.session() as s:
            if show:
                print_json(billing.dunning_schedule_json(await billing.get_issuer(s, key)))
                return
            row = await billing.set_dunning_schedule(s, key, data)
            rules = len((row.dunning or billing.DEFAULT_DUNNING_SCHEDULE)["rules"])
        what = "the default schedule" if data is None else f"a schedule of {rules} rule(s)"
        console.print(f"issuer {key}: dunning by {what}", highlight=False)

    run_with_db(go)


@dunning_app.command("run")
def dunning_run(
    today: Annotated[str | None, typer.Option(help="Run as on this date (YYYY-MM-DD); default: now")] = None,
    issuer: Annotated[str | None, typer.Option(help="Only this issuer's invoices")] = None,
) -> None:
    """Do the dunning steps due (each once; safe to run again, or alongside evhub serve)."""
    day = _day(today)

    async def go(db: Database) -> None:
        if issuer is not None:
            async with db.session() as s:
                await billing.get_issuer(s, issuer)
        done = await billing.run_dunning(db, today=day, issuer_key=issuer)
        console.print(f"{done} dunning step(s) done", highlight=False)

    run_with_db(go)


@dunning_app.command("status")
def dunning_status(
    issuer: Annotated[str | None, typer.Option(help="Only this issuer's accounts")] = None,
    today: Annotated[str | None, typer.Option(help="Overdue as on this date (YYYY-MM-DD)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Each account's outstanding and overdue amounts, dunning state and last step."""
    day = _day(today)

    async def go(db: Database) -> None:
        async with db.session() as s:
            if issuer is not None:
                await billing.get_issuer(s, issuer)
            items = [
                _account_item(a) for a in await billing.dunning_statuses(s, issuer_key=issuer, today=day)
            ]
        if as_json:
            print_json(items)
            return
        rows = [
            [
                str(i["account_id"]),
                i["issuer"],
                i["buyer"],
                f"{i['outstanding']} {i['currency']}",
                f"{i['overdue']} {i['currency']}",
                i["state"],
                f"{i['last_step']['rule']} ({i['last_step']['invoice']})" if i["last_step"] else "—",
            ]
            for i in items
        ]
        columns = ["account", "issuer", "buyer", "outstanding", "overdue", "state", "last step"]
        table("Dunning", columns, rows)

    run_with_db(go)


@dunning_app.command("steps")
def dunning_steps(
    number: Annotated[str, typer.Argument(help="Invoice number")],
    issuer: Annotated[str | None, typer.Option(help="The invoice's issuer (when numbers repeat)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The dunning steps done for one invoice, each with its rule."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            document = await billing.invoice_by_number(s, number, issuer)
            items = [_step_item(step) for step in await billing.invoice_dunning_steps(s, document)]
        if as_json:
            print_json(items)
            return
        columns = ["due_on", "rule", "action", "key", "done_at"]
        table(f"Dunning of {number}", columns, [[str(i[c]) for c in columns] for i in items])

    run_with_db(go)
