"""``evhub api-keys add|list|revoke`` — keys for the operators' REST API (``/api``)."""

from __future__ import annotations

from typing import Annotated

import typer

from evhub.cli._common import console, fail, run_with_db, table
from evhub.db.engine import Database

api_keys_app = typer.Typer(help="API keys for /api (hub operator, or one CPO).", no_args_is_help=True)


@api_keys_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the key (who uses it)")],
    cpo: Annotated[str | None, typer.Option(help="Limit the key to one CPO (COUNTRY*PARTY)")] = None,
) -> None:
    """Create a key; it is shown once and stored only as a hash."""
    from evhub.apiauth import create_key
    from evhub.models import PartyRole
    from evhub.provisioning import find_party

    async def go(db: Database) -> None:
        async with db.session() as s:
            party = await find_party(s, cpo, PartyRole.CPO) if cpo else None
            try:
                key = await create_key(s, name, party)
            except ValueError as exc:
                fail(str(exc))
        scope = f"CPO {cpo}" if cpo else "hub operator (everything)"
        console.print(
            f"API key {name!r} for {scope} — send it as `Authorization: Bearer <key>`; it is not shown again:"
        )
        console.print(key, highlight=False)

    run_with_db(go)


@api_keys_app.command("list")
def list_() -> None:
    """List keys (never the keys themselves)."""
    from evhub.apiauth import list_keys

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = await list_keys(s)
        table(
            "API keys",
            ["name", "scope", "revoked", "last used"],
            [
                [
                    k.name,
                    f"CPO #{k.cpo_id}" if k.cpo_id else "hub",
                    "yes" if k.revoked else "",
                    k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never",
                ]
                for k in rows
            ],
        )

    run_with_db(go)


@api_keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name")]) -> None:
    """Revoke a key at once."""
    from evhub.apiauth import revoke_key

    async def go(db: Database) -> None:
        async with db.session() as s:
            try:
                await revoke_key(s, name)
            except ValueError as exc:
                fail(str(exc))
        console.print(f"revoked {name}")

    run_with_db(go)
