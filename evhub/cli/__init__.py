"""The ``evhub`` command line: provisioning, the database, ``serve`` and ``demo``.

Each group lives in its own module; this one assembles them. ``main`` is the console script.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from evhub.cli import (
    apikeys,
    billing,
    billing_reports,
    dunning,
    fleets,
    partners,
    payments,
    pricing,
    provision,
    sessions,
    settle,
    simulate,
    tariff_policy,
)
from evhub.cli._common import console, error_line, reported_errors, run_with_db, settings
from kernel.db.engine import Database

try:  # typer >= 0.29 carries its own copy of click; before, it used click itself
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer
    # click's own classes: the same names, which mypy sees as other types than typer's copy (a typing gap only)
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[assignment]

app = typer.Typer(
    name="evhub",
    help="evhub — EV-charging roaming and settlement hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(provision.parties_app, name="parties")
app.add_typer(provision.locations_app, name="locations")
app.add_typer(provision.chargers_app, name="chargers")
app.add_typer(provision.tokens_app, name="tokens")
app.add_typer(provision.tariffs_app, name="tariffs")
provision.tariffs_app.add_typer(tariff_policy.policy_app, name="policy")
app.add_typer(pricing.cdrs_app, name="cdrs")
app.add_typer(fleets.fleets_app, name="fleets")
app.add_typer(partners.partners_app, name="partners")
app.add_typer(partners.outbox_app, name="outbox")
app.add_typer(settle.settle_app, name="settle")
app.add_typer(settle.agreements_app, name="agreements")
app.add_typer(simulate.simulate_app, name="simulate")
app.add_typer(apikeys.api_keys_app, name="api-keys")
app.add_typer(pricing.grid_app, name="grid")
app.add_typer(sessions.sessions_app, name="sessions")
app.add_typer(billing.issuers_app, name="issuers")
app.add_typer(billing.invoices_app, name="invoices")
app.add_typer(billing_reports.billing_app, name="billing")
app.add_typer(dunning.dunning_app, name="dunning")
app.add_typer(billing.accounts_app, name="accounts")
app.add_typer(payments.payments_app, name="payments")  # also adds "accounts payment-method"


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Create the schema on an empty database or apply the missing migrations (to head by default)."""
    from kernel.db.migrate import schema_state, upgrade

    async def go(db: Database) -> None:
        before = await schema_state(db)
        state = await upgrade(db, revision)
        if state.current == before.current:
            console.print(
                f"database already at revision {state.current or 'base'} (head {state.head}): nothing to do"
            )
        else:
            was = before.current or ("empty" if before.empty else "base")
            console.print(f"database upgraded from {was} to revision {state.current} (head {state.head})")

    run_with_db(go, upgrade_default=False, check_schema=False)


@db_app.command("status")
def db_status() -> None:
    """Say whether the schema is empty, outdated, up to date or newer than this evhub (exit 1 unless up to date)."""
    from kernel.db.migrate import schema_state, verdict

    async def go(db: Database) -> None:
        state = await schema_state(db)
        console.print(verdict(state), highlight=False, soft_wrap=True)
        if not state.up_to_date:
            raise typer.Exit(1)

    run_with_db(go, upgrade_default=False, check_schema=False)


@app.command()
def serve() -> None:
    """Run the hub: OCPP listener, HTTP app (API, OCPI, portal) and scheduler, until SIGTERM."""
    from evhub.app import serve as run
    from evhub.workers import use_uvloop
    from kernel.logs import configure

    cfg = settings()
    configure(cfg.log_level, cfg.log_format)
    use_uvloop()
    with reported_errors():
        asyncio.run(run(cfg))


@app.command()
def demo(
    keep_running: Annotated[
        bool, typer.Option(help="Leave the hub and portal running after the tour")
    ] = False,
    workdir: Annotated[str | None, typer.Option(help="Folder for the demo's database and outputs")] = None,
) -> None:
    """Run the whole hub on embedded SQLite with simulated chargers, partners and grid, and show what happened."""
    from evhub.demo import run_demo

    with reported_errors():
        asyncio.run(run_demo(keep_running=keep_running, workdir=workdir))


def main() -> None:
    """The console script: click's usage errors (an unparsable or missing option) become one line too."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a bare group prints its help, as before
        console.print(exc.ctx.get_help() if exc.ctx else str(exc), highlight=False, markup=False)
        code = 0
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        error_line(f"{exc.format_message()}{where}")
        code = exc.exit_code
    except typer.Abort:
        error_line("aborted")
        code = 1
    except KeyboardInterrupt:  # pragma: no cover
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
