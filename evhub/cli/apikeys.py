"""``evhub api-keys add|list|revoke`` — keys for the operators' REST API (``/api``). A key is named by its name
or a unique prefix of it."""

from __future__ import annotations

from typing import Annotated

import typer

from evhub.cli._common import console, fail, print_json, run_with_db, table
from evhub.cli._lookup import resolve_prefix
from kernel.db.engine import Database

api_keys_app = typer.Typer(help="API keys for /api (hub operator, or one CPO).", no_args_is_help=True)


@api_keys_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the key (who uses it)")],
    cpo: Annotated[str | None, typer.Option(help="Limit the key to one CPO (COUNTRY*PARTY)")] = None,
) -> None:
    """Create a key; it is shown once and stored only as a hash."""
    from evhub.provisioning import find_party
    from kernel.apiauth import create_key
    from kernel.models import PartyRole

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            party = await find_party(db_session, cpo, PartyRole.CPO) if cpo else None
            try:
                key = await create_key(db_session, name, party)
            except ValueError as exc:
                fail(str(exc))
        scope = f"CPO {cpo}" if cpo else "hub operator (everything)"
        console.print(
            f"API key {name!r} for {scope} — send it as `Authorization: Bearer <key>`; it is not shown again:"
        )
        console.print(key, highlight=False)

    run_with_db(go)


@api_keys_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List keys (never the keys themselves)."""
    from evhub.provisioning import list_parties
    from kernel.apiauth import list_keys

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = await list_keys(db_session)
            parties = {p.id: p.key for p in await list_parties(db_session)}
        items = [
            {
                "name": k.name,
                "scope": f"CPO {parties.get(k.cpo_id, k.cpo_id)}" if k.cpo_id else "hub",
                "revoked": k.revoked,
                "created_at": k.created_at.isoformat(timespec="seconds") if k.created_at else None,
                "last_used_at": k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else None,
            }
            for k in rows
        ]
        if as_json:
            print_json(items)
            return
        table(
            "API keys",
            ["name", "scope", "revoked", "last used"],
            [
                [i["name"], i["scope"], "yes" if i["revoked"] else "", i["last_used_at"] or "never"]
                for i in items
            ],
        )

    run_with_db(go)


@api_keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name (or a unique prefix)")]) -> None:
    """Revoke a key at once."""
    from kernel.apiauth import revoke_key
    from kernel.models import ApiKey

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            full = await resolve_prefix(db_session, ApiKey.name, name, "API key")
            await revoke_key(db_session, full)
        console.print(f"revoked {full}")

    run_with_db(go)
