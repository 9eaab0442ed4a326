"""``evhub tariffs policy set|list`` — how a CPO's sessions use its tariffs (the price lock, T8).

A policy row with no tariff is the CPO's default; one with ``--tariff ID`` overrides it for that tariff id. With
``price_lock`` a session is priced for its whole duration with the tariff version valid at its start (OCPI
2.2.1 mod_tariffs: "a driver accepts the tariff which is valid when they start their charging session"); rating
and quotes follow the policy (:mod:`tariffs.price_lock`)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from evhub import provisioning as prov
from evhub.cli._common import console, error_line, print_json, run_with_db, table
from kernel.db.engine import Database
from kernel.models import Party, PartyRole, TariffPolicy, TariffVersion

policy_app = typer.Typer(
    help="Tariff policies: the price lock (the price valid at the session's start) per CPO or tariff.",
    no_args_is_help=True,
)


def _scope(cpo_key: str, tariff_id: str | None) -> str:
    return f"{cpo_key} tariff {tariff_id}" if tariff_id else f"{cpo_key} (default for its tariffs)"


@policy_app.command("set")
def policy_set(
    cpo: Annotated[str, typer.Option(help="The CPO, COUNTRY*PARTY (e.g. NL*AMP)")],
    price_lock: Annotated[
        bool,
        typer.Option(
            "--price-lock/--no-price-lock",
            help="Price each session with the tariff version valid at its start, for its whole duration",
        ),
    ],
    tariff: Annotated[
        str | None, typer.Option(help="A tariff id of the CPO; without it, the CPO's default")
    ] = None,
) -> None:
    """Set the price lock for a CPO's tariffs (default) or one tariff id (overrides the default)."""
    if tariff is not None and not tariff.strip():
        raise typer.BadParameter("must not be empty", param_hint="--tariff")

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            party = await prov.find_party(db_session, cpo, PartyRole.CPO)
            key = party.key
            query = select(TariffPolicy).where(TariffPolicy.cpo_id == party.id)
            query = query.where(
                TariffPolicy.tariff_id == tariff if tariff is not None else TariffPolicy.tariff_id.is_(None)
            )
            row = await db_session.scalar(query)
            if row is None:
                row = TariffPolicy(cpo_id=party.id, tariff_id=tariff)
                db_session.add(row)
            row.price_lock = price_lock
            known = tariff is None or await db_session.scalar(
                select(TariffVersion.id)
                .where(TariffVersion.cpo_id == party.id, TariffVersion.tariff_id == tariff)
                .limit(1)
            )
        console.print(
            f"price lock {'on' if price_lock else 'off'} for {_scope(key, tariff)}", highlight=False
        )
        if not known:
            error_line(
                f"note: {key} has no tariff {tariff} stored yet; the policy applies once it is imported"
            )

    run_with_db(go)


@policy_app.command("list")
def policy_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Every tariff policy: CPO, tariff (empty: the CPO's default), price lock."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = (
                await db_session.execute(
                    select(TariffPolicy, Party)
                    .join(Party, Party.id == TariffPolicy.cpo_id)
                    .order_by(Party.country_code, Party.party_id, TariffPolicy.tariff_id.is_not(None))
                    .order_by(TariffPolicy.tariff_id)
                )
            ).all()
        out = [
            {
                "cpo": party.key,
                "tariff_id": policy.tariff_id,
                "price_lock": policy.price_lock,
            }
            for policy, party in rows
        ]
        if as_json:
            print_json(out)
            return
        table(
            "Tariff policies (no tariff: the CPO's default; no row: no price lock)",
            ["cpo", "tariff", "price lock"],
            [[o["cpo"], o["tariff_id"] or "(default)", "on" if o["price_lock"] else "off"] for o in out],
        )

    run_with_db(go)
