"""``evhub fleets add|add-manager|list|update|remove|remove-manager`` — fleets and the managers who log in to
the portal. A fleet is named by its name or a unique prefix of it."""

from __future__ import annotations

from typing import Annotated, TypedDict

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from evhub import lifecycle
from evhub.cli._common import console, fail, print_json, run_with_db, table
from evhub.cli._lookup import resolve_prefix
from kernel.db.engine import Database
from kernel.models import Fleet, FleetManager, Token

fleets_app = typer.Typer(help="Fleets and their portal managers.", no_args_is_help=True)


class _FleetItem(TypedDict):
    """One fleet as ``fleets list`` prints it (a table row, or an object of the JSON list)."""

    fleet: str
    currency: str
    tokens: int
    managers: list[str]


async def _fleet(db_session: AsyncSession, name: str) -> Fleet:
    """The fleet of this name, or of the one name that starts with it."""
    return await lifecycle.find_fleet(db_session, await resolve_prefix(db_session, Fleet.name, name, "fleet"))


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
        async with db.session() as db_session:
            full = (await _fleet(db_session, fleet)).name
        try:
            manager = await add_manager(db, full, email, password, name=name)
        except AdminError as exc:
            fail(str(exc))
        console.print(f"added manager {manager.email} to fleet {full}")

    run_with_db(go)


@fleets_app.command("list")
def fleets_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List fleets, their managers and how many tokens each has."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            fleets = (await db_session.scalars(select(Fleet).order_by(Fleet.name))).all()
            managers = (await db_session.scalars(select(FleetManager).order_by(FleetManager.email))).all()
            token_fleets = (
                await db_session.scalars(select(Token.fleet_id).where(Token.fleet_id.is_not(None)))
            ).all()
        by_fleet: dict[int, list[str]] = {}
        for m in managers:
            by_fleet.setdefault(m.fleet_id, []).append(m.email)
        items: list[_FleetItem] = [
            {
                "fleet": f.name,
                "currency": f.currency,
                "tokens": token_fleets.count(f.id),
                "managers": by_fleet.get(f.id, []),
            }
            for f in fleets
        ]
        if as_json:
            print_json(items)
            return
        table(
            "Fleets",
            ["fleet", "currency", "tokens", "managers"],
            [[i["fleet"], i["currency"], i["tokens"], ", ".join(i["managers"])] for i in items],
        )

    run_with_db(go)


@fleets_app.command("update")
def fleets_update(
    fleet: Annotated[str, typer.Argument(help="Fleet name (or a unique prefix)")],
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    currency: Annotated[str | None, typer.Option(help="New currency of the fleet's reports")] = None,
) -> None:
    """Rename a fleet or change its reports' currency."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            f = await _fleet(db_session, fleet)
            await lifecycle.update_fleet(db_session, f, name=name, currency=currency)
        console.print(f"updated fleet {f.name} ({f.currency})")

    run_with_db(go)


@fleets_app.command("remove")
def fleets_remove(fleet: Annotated[str, typer.Argument(help="Fleet name (or a unique prefix)")]) -> None:
    """Remove a fleet that has no tokens, with its manager logins."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            f = await _fleet(db_session, fleet)
            managers = await lifecycle.remove_fleet(db_session, f)
        console.print(f"removed fleet {f.name} and {managers} manager login(s)")

    run_with_db(go)


@fleets_app.command("remove-manager")
def fleets_remove_manager(email: Annotated[str, typer.Argument(help="The manager's login email")]) -> None:
    """Remove a fleet manager's portal login."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            manager = await lifecycle.remove_manager(db_session, email)
        console.print(f"removed manager {manager.email}")

    run_with_db(go)
