"""``evhub parties|locations|chargers|tokens|tariffs`` — provisioning commands with a matching ``list`` each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evhub import provisioning as prov
from evhub.cli._common import console, run_with_db, table
from evhub.db.engine import Database
from evhub.money import format_amount

parties_app = typer.Typer(
    help="Parties: hosted CPOs, eMSP partners, the hub, site hosts.", no_args_is_help=True
)
locations_app = typer.Typer(
    help="Locations with EVSEs and connectors (OCPI 2.2.1 JSON).", no_args_is_help=True
)
chargers_app = typer.Typer(help="Charge points allowed to connect over OCPP.", no_args_is_help=True)
tokens_app = typer.Typer(help="Tokens (RFID cards, app users) that may start sessions.", no_args_is_help=True)
tariffs_app = typer.Typer(
    help="Tariffs (OCPI 2.2.1 JSON), versioned; pricing and replays.", no_args_is_help=True
)


def _read_objects(file: Path) -> list:
    """The JSON objects in ``file`` (one object or a list of them)."""
    if not file.is_file():
        raise prov.ProvisioningError(f"no such file: {file}")
    data = prov.load_json(file.read_text(encoding="utf-8"), str(file))
    return data if isinstance(data, list) else [data]


@parties_app.command("add")
def parties_add(
    party: Annotated[str, typer.Argument(help="COUNTRY*PARTY, e.g. NL*ABC")],
    role: Annotated[str, typer.Option(help="CPO, EMSP, HUB, SITE_HOST or OTHER")],
    name: Annotated[str, typer.Option(help="Display name")],
) -> None:
    """Add a party."""

    async def go(db: Database) -> None:
        cc, pid = prov.parse_party_key(party)
        async with db.session() as s:
            p = await prov.add_party(s, cc, pid, role, name)
        console.print(f"added {p.role.value} {p.key} ({p.name})")

    run_with_db(go)


@parties_app.command("list")
def parties_list() -> None:
    """List parties."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = await prov.list_parties(s)
        table("Parties", ["party", "role", "name"], [[p.key, p.role.value, p.name] for p in rows])

    run_with_db(go)


@locations_app.command("import")
def locations_import(
    file: Annotated[Path, typer.Argument(help="OCPI Location JSON (one object or a list)", exists=False)],
    grid_zone: Annotated[str | None, typer.Option(help="Grid zone for grid-load pricing")] = None,
) -> None:
    """Import (create or update) locations from an OCPI Location JSON file. All or nothing."""

    async def go(db: Database) -> None:
        items = _read_objects(file)
        async with db.session() as s:
            results = [await prov.import_location(s, item, grid_zone=grid_zone) for item in items]
        for loc, created in results:
            verb = "created" if created else "updated"
            console.print(
                f"{verb} location {loc.ocpi_id} ({loc.name or loc.address}, {loc.time_zone}), {len(loc.evses)} EVSEs"
            )

    run_with_db(go)


@locations_app.command("list")
def locations_list() -> None:
    """List locations and their EVSEs."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = await prov.list_locations(s)
        table(
            "Locations",
            ["id", "name", "city", "time zone", "grid zone", "EVSEs"],
            [
                [r.ocpi_id, r.name, r.city, r.time_zone, r.grid_zone, ", ".join(e.uid for e in r.evses)]
                for r in rows
            ],
        )

    run_with_db(go)


@chargers_app.command("add")
def chargers_add(
    identity: Annotated[str, typer.Argument(help="The charge point id in ws://HOST:9000/ocpp/{id}")],
    password: Annotated[
        str, typer.Option(help="Basic-auth password (stored hashed)", envvar="EVHUB_CHARGER_PASSWORD")
    ],
    location: Annotated[str, typer.Option(help="OCPI location id")],
    evse: Annotated[list[str], typer.Option(help="EVSE uid; repeat: the n-th is OCPP EVSE/connector n")],
    ocpp_version: Annotated[str, typer.Option("--ocpp", help="1.6 or 2.0.1")] = "1.6",
    security_profile: Annotated[int, typer.Option(help="OCPP security profile 1, 2 or 3")] = 1,
    registration: Annotated[
        str, typer.Option(help="Boot answer: Accepted, Pending or Rejected")
    ] = "Accepted",
) -> None:
    """Register a charge point."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            cp = await prov.add_charger(
                s,
                identity,
                password=password,
                location=location,
                evse_uids=evse,
                ocpp_version=ocpp_version,
                security_profile=security_profile,
                registration=registration,
            )
        console.print(
            f"added charger {cp.identity} (OCPP {cp.ocpp_version.value}, {len(evse)} EVSEs at {location})"
        )

    run_with_db(go)


@chargers_app.command("list")
def chargers_list() -> None:
    """List charge points with their state."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = await prov.list_chargers(s)
        table(
            "Charge points",
            ["identity", "ocpp", "profile", "registration", "status", "last seen", "vendor/model"],
            [
                [
                    r.identity,
                    r.ocpp_version.value,
                    r.security_profile,
                    r.registration_status.value,
                    r.status,
                    r.last_seen.isoformat(timespec="seconds") if r.last_seen else "never",
                    " ".join(x for x in (r.vendor, r.model) if x),
                ]
                for r in rows
            ],
        )

    run_with_db(go)


@tokens_app.command("add")
def tokens_add(
    uid: Annotated[str, typer.Argument(help="Token uid (e.g. RFID UID)")],
    issuer: Annotated[str, typer.Option(help="Issuing eMSP as COUNTRY*PARTY")],
    type_: Annotated[str, typer.Option("--type", help="RFID, APP_USER, AD_HOC_USER or OTHER")] = "RFID",
    contract_id: Annotated[str | None, typer.Option(help="eMA contract id")] = None,
    fleet: Annotated[str | None, typer.Option(help="Fleet name")] = None,
    driver: Annotated[str | None, typer.Option(help="Driver's name")] = None,
    email: Annotated[str | None, typer.Option(help="Driver's email for receipts")] = None,
    vehicle: Annotated[str | None, typer.Option(help="Vehicle (plate or name)")] = None,
    limit: Annotated[str | None, typer.Option(help="Monthly spending limit, e.g. 150.00")] = None,
    currency: Annotated[str | None, typer.Option(help="Currency of the limit, e.g. EUR")] = None,
    whitelist: Annotated[str, typer.Option(help="ALWAYS, ALLOWED, ALLOWED_OFFLINE or NEVER")] = "ALLOWED",
) -> None:
    """Add a token."""
    spec = prov.TokenSpec(
        uid=uid,
        issuer_party=issuer,
        contract_id=contract_id,
        type=type_,
        fleet=fleet,
        driver_name=driver,
        driver_email=email,
        vehicle=vehicle,
        monthly_limit=limit,
        currency=currency,
        whitelist=whitelist,
    )

    async def go(db: Database) -> None:
        async with db.session() as s:
            tok = await prov.add_token(s, spec)
        console.print(f"added token {tok.uid} ({tok.type}) of {tok.country_code}*{tok.party_id}")

    run_with_db(go)


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = await prov.list_tokens(s)
        table(
            "Tokens",
            ["issuer", "uid", "type", "valid", "whitelist", "driver", "monthly limit"],
            [
                [
                    f"{t.country_code}*{t.party_id}",
                    t.uid,
                    t.type,
                    "yes" if t.valid else "no",
                    t.whitelist,
                    t.driver_name,
                    format_amount(t.monthly_limit, t.limit_currency)
                    if t.monthly_limit is not None and t.limit_currency
                    else "",
                ]
                for t in rows
            ],
        )

    run_with_db(go)


@tariffs_app.command("import")
def tariffs_import(
    file: Annotated[Path, typer.Argument(help="OCPI Tariff JSON (one object or a list)")],
) -> None:
    """Import tariffs; a changed tariff becomes a new version, an unchanged one is left alone. All or nothing."""

    async def go(db: Database) -> None:
        items = _read_objects(file)
        async with db.session() as s:
            results = [await prov.import_tariff(s, item) for item in items]
        for row, created in results:
            state = f"version {row.version}" if created else f"unchanged (version {row.version})"
            console.print(f"tariff {row.tariff_id} ({row.currency}): {state}")

    run_with_db(go)


@tariffs_app.command("list")
def tariffs_list() -> None:
    """List tariff versions."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = await prov.list_tariffs(s)
        table(
            "Tariffs",
            ["id", "version", "currency", "valid from", "source"],
            [
                [
                    t.tariff_id,
                    t.version,
                    t.currency,
                    t.start_date_time.isoformat() if t.start_date_time else "",
                    t.source,
                ]
                for t in rows
            ],
        )

    run_with_db(go)
