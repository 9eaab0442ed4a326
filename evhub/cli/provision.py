"""``evhub parties|locations|chargers|tokens|tariffs`` — provisioning commands: add or import, ``list`` (with
``--json``), and for parties, chargers and tokens ``update``, ``remove`` and (chargers, tokens) ``block``/``unblock``
(the rules are in :mod:`evhub.lifecycle`)."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, TypedDict

import typer
from sqlalchemy import select

from evhub import lifecycle
from evhub import provisioning as prov
from evhub.cli._common import console, print_json, run_with_db, settings, table
from evhub.wiring import wired_hooks
from kernel.db.engine import Database
from kernel.money import format_amount

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

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
RoleOption = Annotated[str | None, typer.Option(help="The party's role, when the key has several")]
IssuerOption = Annotated[
    str | None, typer.Option(help="Issuer COUNTRY*PARTY, when several tokens have the uid")
]
TypeOption = Annotated[
    str | None, typer.Option("--type", help="Token type, when several tokens have the uid")
]


# What the ``list`` commands print: a table row each, or one object of the ``--json`` list.


class _EvseItem(TypedDict):
    uid: str
    evse_id: str | None
    status: str


class _LocationItem(TypedDict):
    id: str
    cpo: str | None
    name: str | None
    address: str
    city: str
    country: str
    time_zone: str
    grid_zone: str | None
    evses: list[_EvseItem]


class _ChargerItem(TypedDict):
    identity: str
    ocpp_version: str
    security_profile: int
    registration: str
    blocked: bool
    status: str
    location: str | None
    evses: int
    last_seen: str | None
    vendor: str | None
    model: str | None


class _TokenItem(TypedDict):
    issuer: str
    uid: str
    type: str
    contract_id: str
    valid: bool
    whitelist: str
    fleet: str | None
    driver: str | None
    email: str | None
    vehicle: str | None
    monthly_limit: Decimal | None
    limit_currency: str | None
    last_updated: str | None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


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
    website: Annotated[str | None, typer.Option(help="Website (http:// or https:// URL)")] = None,
) -> None:
    """Add a party."""

    async def go(db: Database) -> None:
        cc, pid = prov.parse_party_key(party)
        async with db.session() as db_session:
            p = await prov.add_party(db_session, cc, pid, role, name, website=website)
        console.print(f"added {p.role.value} {p.key} ({p.name})")

    run_with_db(go)


@parties_app.command("list")
def parties_list(as_json: JsonOption = False) -> None:
    """List parties."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = await prov.list_parties(db_session)
        items = [{"party": p.key, "role": p.role.value, "name": p.name, "website": p.website} for p in rows]
        if as_json:
            print_json(items)
            return
        table(
            "Parties",
            ["party", "role", "name", "website"],
            [[i["party"], i["role"], i["name"], i["website"]] for i in items],
        )

    run_with_db(go)


@parties_app.command("update")
def parties_update(
    party: Annotated[str, typer.Argument(help="COUNTRY*PARTY")],
    role: RoleOption = None,
    name: Annotated[str | None, typer.Option(help="New display name")] = None,
    website: Annotated[str | None, typer.Option(help="New website URL ('' clears it)")] = None,
) -> None:
    """Change a party's name or website."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            p = await lifecycle.find_party_any_role(db_session, party, role)
            await lifecycle.update_party(db_session, p, name=name, website=website)
        console.print(f"updated {p.role.value} {p.key} ({p.name})")

    run_with_db(go)


@parties_app.command("remove")
def parties_remove(
    party: Annotated[str, typer.Argument(help="COUNTRY*PARTY")],
    role: RoleOption = None,
) -> None:
    """Remove a party nothing refers to (one with sessions or CDRs is kept: the refusal says why)."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            p = await lifecycle.find_party_any_role(db_session, party, role)
            label = f"{p.role.value} {p.key} ({p.name})"
            await lifecycle.remove_party(db_session, p)
        console.print(f"removed {label}")

    run_with_db(go)


@locations_app.command("import")
def locations_import(
    file: Annotated[Path, typer.Argument(help="OCPI Location JSON (one object or a list)", exists=False)],
    grid_zone: Annotated[str | None, typer.Option(help="Grid zone for grid-load pricing")] = None,
) -> None:
    """Import (create or update) locations from an OCPI Location JSON file. All or nothing."""

    async def go(db: Database) -> None:
        items = _read_objects(file)
        async with db.session() as db_session:
            results = [await prov.import_location(db_session, item, grid_zone=grid_zone) for item in items]
        for loc, created in results:
            verb = "created" if created else "updated"
            console.print(
                f"{verb} location {loc.ocpi_id} ({loc.name or loc.address}, {loc.time_zone}), {len(loc.evses)} EVSEs"
            )

    run_with_db(go)


@locations_app.command("list")
def locations_list(as_json: JsonOption = False) -> None:
    """List locations and their EVSEs."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = await prov.list_locations(db_session)
            cpos = {p.id: p.key for p in await prov.list_parties(db_session)}
        items: list[_LocationItem] = [
            {
                "id": r.ocpi_id,
                "cpo": cpos.get(r.cpo_id),
                "name": r.name,
                "address": r.address,
                "city": r.city,
                "country": r.country,
                "time_zone": r.time_zone,
                "grid_zone": r.grid_zone,
                "evses": [{"uid": e.uid, "evse_id": e.evse_id, "status": e.status} for e in r.evses],
            }
            for r in rows
        ]
        if as_json:
            print_json(items)
            return
        table(
            "Locations",
            ["id", "cpo", "name", "city", "time zone", "grid zone", "EVSEs"],
            [
                [
                    *(i["id"], i["cpo"], i["name"], i["city"], i["time_zone"], i["grid_zone"]),
                    ", ".join(e["uid"] for e in i["evses"]),
                ]
                for i in items
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
        async with db.session() as db_session:
            cp = await prov.add_charger(
                db_session,
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
def chargers_list(as_json: JsonOption = False) -> None:
    """List charge points with their state."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = await prov.list_chargers(db_session)
            locations = {loc.id: loc.ocpi_id for loc in await prov.list_locations(db_session)}
        items: list[_ChargerItem] = [
            {
                "identity": r.identity,
                "ocpp_version": r.ocpp_version.value,
                "security_profile": r.security_profile,
                "registration": r.registration_status.value,
                "blocked": lifecycle.charger_blocked(r),
                "status": r.status,
                "location": locations.get(r.location_id) if r.location_id else None,
                "evses": len(r.evse_map),
                "last_seen": _iso(r.last_seen),
                "vendor": r.vendor,
                "model": r.model,
            }
            for r in rows
        ]
        if as_json:
            print_json(items)
            return
        table(
            "Charge points",
            ["identity", "ocpp", "profile", "registration", "blocked", "status", "last seen", "vendor/model"],
            [
                [
                    i["identity"],
                    i["ocpp_version"],
                    i["security_profile"],
                    i["registration"],
                    "BLOCKED" if i["blocked"] else "",
                    i["status"],
                    i["last_seen"] or "never",
                    " ".join(x for x in (i["vendor"], i["model"]) if x),
                ]
                for i in items
            ],
        )

    run_with_db(go)


@chargers_app.command("update")
def chargers_update(
    identity: Annotated[str, typer.Argument(help="The charge point id")],
    password: Annotated[
        str | None, typer.Option(help="New Basic-auth password", envvar="EVHUB_CHARGER_PASSWORD")
    ] = None,
    location: Annotated[str | None, typer.Option(help="New OCPI location id (give its --evse too)")] = None,
    evse: Annotated[
        list[str] | None, typer.Option(help="EVSE uid; repeat: replaces the charger's EVSE numbering")
    ] = None,
    ocpp_version: Annotated[str | None, typer.Option("--ocpp", help="1.6 or 2.0.1")] = None,
    security_profile: Annotated[int | None, typer.Option(help="OCPP security profile 1, 2 or 3")] = None,
    registration: Annotated[
        str | None, typer.Option(help="Boot answer: Accepted, Pending or Rejected")
    ] = None,
    meter_public_key: Annotated[
        str | None,
        typer.Option(
            help="Public key of the charger's meter that signs its readings (DER, hex or base64), checked "
            "against the signed meter data before a CDR carries it; '' removes it"
        ),
    ] = None,
) -> None:
    """Change a charge point's password, location and EVSEs, OCPP version, profile, boot answer or meter key."""

    async def go(db: Database) -> None:
        key = _meter_public_key(meter_public_key) if meter_public_key is not None else None
        async with db.session() as db_session:
            cp = await lifecycle.update_charger(
                db_session,
                identity,
                password=password,
                location=location,
                evse_uids=evse,
                ocpp_version=ocpp_version,
                security_profile=security_profile,
                registration=registration,
            )
            if meter_public_key is not None:
                cp.meter_public_key = key
        meter = (
            ""
            if meter_public_key is None
            else (", meter public key set" if key else ", meter public key removed")
        )
        console.print(
            f"updated charger {cp.identity} (OCPP {cp.ocpp_version.value}, profile {cp.security_profile}, "
            f"{cp.registration_status.value}, {len(cp.evse_map)} EVSEs{meter})",
            soft_wrap=True,
        )

    run_with_db(go)


def _meter_public_key(text: str) -> str | None:
    """The meter's public key as stored (base64 of its DER encoding, as OCPI's ``public_key``), None for '';
    a key that is not a public key is the operator's error, one line."""
    # loaded when used: the OCMF library and the key parser are not needed by any other command
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    from kernel.signed_meter import public_key_base64

    if not text.strip():
        return None
    key = public_key_base64(text)
    try:
        if key is None:
            raise ValueError
        load_der_public_key(base64.b64decode(key))
    except (ValueError, UnsupportedAlgorithm):
        raise prov.ProvisioningError(
            "--meter-public-key: not a public key (give its DER encoding, hex or base64, as the meter's "
            "label or the signed data shows it)"
        ) from None
    return key


def _charger_block(identity: str, blocked: bool) -> None:
    async def go(db: Database) -> None:
        async with db.session() as db_session:
            cp, changed = await lifecycle.set_charger_blocked(db_session, identity, blocked)
        state = "blocked" if blocked else "unblocked"
        if not changed:
            console.print(f"charger {cp.identity} was {state} already")
        elif blocked:
            console.print(
                f"blocked charger {cp.identity}: its connections are refused from now on "
                "(a charger connected now keeps its connection until it reconnects)"
            )
        else:
            console.print(f"unblocked charger {cp.identity}: it may connect with its password again")

    run_with_db(go)


@chargers_app.command("block")
def chargers_block(identity: Annotated[str, typer.Argument(help="The charge point id")]) -> None:
    """Refuse the charger's connections (its password stops working until `unblock`)."""
    _charger_block(identity, True)


@chargers_app.command("unblock")
def chargers_unblock(identity: Annotated[str, typer.Argument(help="The charge point id")]) -> None:
    """Let a blocked charger connect again with its password."""
    _charger_block(identity, False)


@chargers_app.command("remove")
def chargers_remove(identity: Annotated[str, typer.Argument(help="The charge point id")]) -> None:
    """Remove a charger that never had a session (one with sessions is kept: block it instead)."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            await lifecycle.remove_charger(db_session, identity)
        console.print(f"removed charger {identity}")

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
        async with db.session() as db_session:
            tok = await prov.add_token(db_session, spec)
        console.print(f"added token {tok.uid} ({tok.type}) of {tok.country_code}*{tok.party_id}")

    run_with_db(go)


@tokens_app.command("list")
def tokens_list(as_json: JsonOption = False) -> None:
    """List tokens."""
    from kernel.models import Fleet

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = await prov.list_tokens(db_session)
            fleets = {f.id: f.name for f in (await db_session.scalars(select(Fleet))).all()}
        items: list[_TokenItem] = [
            {
                "issuer": f"{t.country_code}*{t.party_id}",
                "uid": t.uid,
                "type": t.type,
                "contract_id": t.contract_id,
                "valid": t.valid,
                "whitelist": t.whitelist,
                "fleet": fleets.get(t.fleet_id) if t.fleet_id else None,
                "driver": t.driver_name,
                "email": t.driver_email,
                "vehicle": t.vehicle,
                "monthly_limit": t.monthly_limit,
                "limit_currency": t.limit_currency,
                "last_updated": _iso(t.last_updated),
            }
            for t in rows
        ]
        if as_json:
            print_json(items)
            return
        table(
            "Tokens",
            ["issuer", "uid", "type", "valid", "whitelist", "fleet", "driver", "monthly limit"],
            [
                [
                    i["issuer"],
                    i["uid"],
                    i["type"],
                    "yes" if i["valid"] else "no (blocked)",
                    i["whitelist"],
                    i["fleet"],
                    i["driver"],
                    format_amount(i["monthly_limit"], i["limit_currency"])
                    if i["monthly_limit"] is not None and i["limit_currency"]
                    else "",
                ]
                for i in items
            ],
        )

    run_with_db(go)


@tokens_app.command("update")
def tokens_update(
    uid: Annotated[str, typer.Argument(help="Token uid")],
    issuer: IssuerOption = None,
    type_: TypeOption = None,
    contract_id: Annotated[str | None, typer.Option(help="eMA contract id")] = None,
    fleet: Annotated[str | None, typer.Option(help="Move the token to this fleet")] = None,
    no_fleet: Annotated[bool, typer.Option("--no-fleet", help="Take the token out of its fleet")] = False,
    driver: Annotated[str | None, typer.Option(help="Driver's name")] = None,
    email: Annotated[str | None, typer.Option(help="Driver's email for receipts")] = None,
    vehicle: Annotated[str | None, typer.Option(help="Vehicle (plate or name)")] = None,
    limit: Annotated[str | None, typer.Option(help="Monthly spending limit, e.g. 150.00")] = None,
    currency: Annotated[str | None, typer.Option(help="Currency of the limit, e.g. EUR")] = None,
    no_limit: Annotated[bool, typer.Option("--no-limit", help="Drop the monthly limit")] = False,
    whitelist: Annotated[str | None, typer.Option(help="ALWAYS, ALLOWED, ALLOWED_OFFLINE or NEVER")] = None,
) -> None:
    """Change a token's fleet, driver, limit, whitelist or contract id."""
    changes = lifecycle.TokenChanges(
        contract_id=contract_id,
        driver_name=driver,
        driver_email=email,
        vehicle=vehicle,
        fleet=fleet,
        no_fleet=no_fleet,
        monthly_limit=limit,
        currency=currency,
        no_limit=no_limit,
        whitelist=whitelist,
    )

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            tok = await lifecycle.find_token(db_session, uid, issuer=issuer, type_=type_)
            await lifecycle.update_token(db_session, tok, changes)
        console.print(f"updated token {tok.uid} ({tok.type}) of {tok.country_code}*{tok.party_id}")

    run_with_db(go)


def _token_block(uid: str, issuer: str | None, type_: str | None, blocked: bool) -> None:
    async def go(db: Database) -> None:
        async with db.session() as db_session:
            tok = await lifecycle.find_token(db_session, uid, issuer=issuer, type_=type_)
            changed = await lifecycle.set_token_blocked(db_session, tok, blocked)
        state = "blocked" if blocked else "unblocked"
        if not changed:
            console.print(f"token {tok.uid} was {state} already")
        elif blocked:
            console.print(f"blocked token {tok.uid}: chargers are told Blocked from now on")
        else:
            console.print(f"unblocked token {tok.uid}")

    run_with_db(go)


@tokens_app.command("block")
def tokens_block(
    uid: Annotated[str, typer.Argument(help="Token uid")],
    issuer: IssuerOption = None,
    type_: TypeOption = None,
) -> None:
    """Block a token (valid = false): its authorizations are answered Blocked."""
    _token_block(uid, issuer, type_, True)


@tokens_app.command("unblock")
def tokens_unblock(
    uid: Annotated[str, typer.Argument(help="Token uid")],
    issuer: IssuerOption = None,
    type_: TypeOption = None,
) -> None:
    """Make a blocked token valid again."""
    _token_block(uid, issuer, type_, False)


@tokens_app.command("remove")
def tokens_remove(
    uid: Annotated[str, typer.Argument(help="Token uid")],
    issuer: IssuerOption = None,
    type_: TypeOption = None,
) -> None:
    """Remove a token that was never used (one with sessions or CDRs is kept: block it instead)."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            tok = await lifecycle.find_token(db_session, uid, issuer=issuer, type_=type_)
            await lifecycle.remove_token(db_session, tok)
        console.print(f"removed token {tok.uid} ({tok.type}) of {tok.country_code}*{tok.party_id}")

    run_with_db(go)


@tariffs_app.command("import")
def tariffs_import(
    file: Annotated[Path, typer.Argument(help="OCPI Tariff JSON (one object or a list)")],
    supersedes: Annotated[
        int | None,
        typer.Option(help="Correct stored version N: the new version takes over N's validity window"),
    ] = None,
) -> None:
    """Import tariffs; a changed tariff becomes a new version, an unchanged one is left alone. All or nothing."""

    async def go(db: Database) -> None:
        items = _read_objects(file)
        if supersedes is not None and len(items) != 1:
            raise prov.ProvisioningError(
                f"--supersedes {supersedes}: give one tariff (the correction of that version), not {len(items)}"
            )
        hooks = wired_hooks(settings(), db).tariff  # the OCPI push of each new version, in its transaction
        async with db.session() as db_session:
            results = [await prov.import_tariff(db_session, item, supersedes=supersedes) for item in items]
            for row, created in results:
                if created:
                    for hook in hooks:
                        await hook(db_session, row)
        for row, created in results:
            state = f"version {row.version}" if created else f"unchanged (version {row.version})"
            if created and row.supersedes_version is not None:
                state += f", superseding version {row.supersedes_version} (takes over its validity window)"
            console.print(f"tariff {row.tariff_id} ({row.currency}): {state}", soft_wrap=True)

    run_with_db(go)


@tariffs_app.command("list")
def tariffs_list(as_json: JsonOption = False) -> None:
    """List tariff versions."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = await prov.list_tariffs(db_session)
            cpos = {p.id: p.key for p in await prov.list_parties(db_session)}
        items = [
            {
                "id": t.tariff_id,
                "cpo": cpos.get(t.cpo_id),
                "version": t.version,
                "currency": t.currency,
                "type": t.type,
                "start_date_time": _iso(t.start_date_time),
                "end_date_time": _iso(t.end_date_time),
                "source": t.source,
            }
            for t in rows
        ]
        if as_json:
            print_json(items)
            return
        table(
            "Tariffs",
            ["id", "cpo", "version", "currency", "valid from", "source"],
            [
                [i["id"], i["cpo"], i["version"], i["currency"], i["start_date_time"] or "", i["source"]]
                for i in items
            ],
        )

    run_with_db(go)
