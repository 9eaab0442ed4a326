"""``evhub fleets add|add-manager|list`` — fleets and the managers who log in to the portal."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from evhub.cli._common import console, fail, run_with_db, table
from evhub.db.engine import Database
from evhub.models import Fleet, FleetManager

fleets_app = typer.Typer(help="Fleets and their portal managers.", no_args_is_help=True)


@fleets_app.command("add")
def fleets_add(
    name: Annotated[str, typer.Argument(help="Fleet name")],
    currency: Annotated[str, typer.Option(help="Currency of the fleet's reports")] = "EUR",
) -> None:
    """Add a fleet."""
    from portal.admin import AdminError, add_fleet

    async def go(db: Database) -> None:
        try:
            fleet = await add_fleet(db, name, currency)
        except AdminError as exc:
            fail(str(exc))
        console.print(f"added fleet {fleet.name} ({fleet.currency})")

    run_with_db(go)


@fleets_app.command("add-manager")
def fleets_add_manager(
    fleet: Annotated[str, typer.Argument(help="Fleet name")],
    email: Annotated[str, typer.Option(help="Login email")],
    password: Annotated[
        str, typer.Option(help="Password (stored as an Argon2id hash)", envvar="EVHUB_MANAGER_PASSWORD")
    ],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
) -> None:
    """Add a fleet manager who can log in to /portal."""
    from portal.admin import AdminError, add_manager

    async def go(db: Database) -> None:
        try:
            manager = await add_manager(db, fleet, email, password, name=name)
        except AdminError as exc:
            fail(str(exc))
        console.print(f"added manager {manager.email} to fleet {fleet}")

    run_with_db(go)


@fleets_app.command("list")
def fleets_list() -> None:
    """List fleets and their managers."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            fleets = (await s.scalars(select(Fleet).order_by(Fleet.name))).all()
            managers = (await s.scalars(select(FleetManager).order_by(FleetManager.email))).all()
        by_fleet: dict[int, list[str]] = {}
        for m in managers:
            by_fleet.setdefault(m.fleet_id, []).append(m.email)
        table(
            "Fleets",
            ["fleet", "currency", "managers"],
            [[f.name, f.currency, ", ".join(by_fleet.get(f.id, []))] for f in fleets],
        )

    run_with_db(go)
