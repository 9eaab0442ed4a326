"""``evhub billing report aging|payments|reconciliation`` — billing's reports as CSV.

``aging [--as-of DAY]``: receivables per issuer and currency in aging buckets at the end of that day (today by
default); ``payments [--period YYYY-MM]``: the month's payments and refunds; ``reconciliation [--period]``: the
month's invoices against their CDRs and payments, with the exceptions. ``--issuer KEY`` narrows to one issuer;
``--csv FILE`` writes the CSV there (``-`` or nothing: to stdout). Bad input is one ``error:`` line and exit 1.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

import billing
from evhub.cli._common import console, fail, run_with_db
from kernel.db.engine import Database
from kernel.timeutil import utcnow

billing_app = typer.Typer(help="Billing: reports.", no_args_is_help=True)
report_app = typer.Typer(
    help="Billing reports as CSV: aging, payments, reconciliation.", no_args_is_help=True
)
billing_app.add_typer(report_app, name="report")

IssuerOption = Annotated[str | None, typer.Option("--issuer", help="Only this issuer (its key)")]
CsvOption = Annotated[str, typer.Option("--csv", help="Write the CSV to FILE ('-': stdout)")]
PeriodOption = Annotated[
    str | None, typer.Option("--period", help="The month, YYYY-MM (default: this month)")
]


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        fail(f"--as-of {value!r} is not a day YYYY-MM-DD")


def _run(name: str, *, as_of: date | None, period: str | None, issuer: str | None, out: str) -> None:
    async def go(db: Database) -> str:
        async with db.session() as db_session:
            return await billing.report_csv(
                db_session, name, today=utcnow().date(), as_of=as_of, period=period, issuer=issuer
            )

    text = run_with_db(go)
    if out in ("", "-"):
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    console.print(f"{name} report: {max(text.count(chr(10)) - 1, 0)} rows written to {out}")


@report_app.command("aging")
def aging(
    as_of: Annotated[str | None, typer.Option("--as-of", help="The day, YYYY-MM-DD (default: today)")] = None,
    issuer: IssuerOption = None,
    csv: CsvOption = "-",
) -> None:
    """Accounts receivable per issuer and currency, in aging buckets."""
    _run("aging", as_of=_day(as_of), period=None, issuer=issuer, out=csv)


@report_app.command("payments")
def payments(period: PeriodOption = None, issuer: IssuerOption = None, csv: CsvOption = "-") -> None:
    """Payments and refunds of a month."""
    _run("payments", as_of=None, period=period, issuer=issuer, out=csv)


@report_app.command("reconciliation")
def reconciliation(period: PeriodOption = None, issuer: IssuerOption = None, csv: CsvOption = "-") -> None:
    """Invoices against their CDRs and payments, and the exceptions."""
    _run("reconciliation", as_of=None, period=period, issuer=issuer, out=csv)
