"""Lifecycle from the real CLI on the real database: update, block/unblock and remove chargers, tokens, parties,
fleets, partners and API keys. A block is proved where it matters — a blocked charger is refused by a running
gateway at the websocket upgrade, a blocked token is answered Blocked by the gateway's authorizer — and every
refusal is one line, a non-zero exit, and leaves the database as it was."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cpo_gateway.authorization import ACCEPTED, BLOCKED, Authorizer
from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import (
    ApiKey,
    ChargePoint,
    ChargePointEvse,
    ChargingSession,
    Fleet,
    FleetManager,
    OutboxMessage,
    OutboxStatus,
    Party,
    Token,
)
from kernel.models.roaming import OcpiPartner, PartnerStatus
from tests.conftest import OCPI_EXAMPLES
from tests.gateway.conftest import basic, gateway_settings

PASSWORD = "charger-password-1"


async def _count(db: Database, model: type, *where) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _refused(cli, *args: str, says: str) -> None:
    result = await cli(*args, ok=False)
    assert result.exit_code == 1, result.output
    assert says in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output


async def _network(cli, *, charger: bool = True) -> None:
    """A CPO, an eMSP, a location and (unless told otherwise: Argon2 is slow on purpose) a charger."""
    await cli("parties", "add", "BE*BEC", "--role", "CPO", "--name", "BeCharged")
    await cli("parties", "add", "DE*TNM", "--role", "EMSP", "--name", "TheNewMotion")
    await cli("locations", "import", str(OCPI_EXAMPLES / "location_example.json"))
    if charger:
        await cli(
            "chargers", "add", "GENT-01", "--password", PASSWORD, "--location", "LOC1", "--evse", "3256"
        )


async def _session(db: Database, charger: str, *, token_uid: str | None = None, active: bool = False) -> None:
    """A session as the gateway records it (only what the lifecycle rules look at)."""
    async with db.session() as s:
        cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == charger))
        token_id = (  # the first token of that uid (two may share it under different types)
            await s.scalar(select(Token.id).where(Token.uid == token_uid).order_by(Token.id))
            if token_uid
            else None
        )
        start = datetime(2026, 6, 1, 8, tzinfo=UTC)
        s.add(
            ChargingSession(
                session_uid=f"{charger}-{await s.scalar(select(func.count()).select_from(ChargingSession))}",
                charge_point_id=cp.id,
                transaction_id="1",
                cpo_id=cp.cpo_id,
                token_id=token_id,
                start_time=start,
                end_time=None if active else start,
                status="ACTIVE" if active else "COMPLETED",
                last_updated=start,
            )
        )


async def _upgrade_status(gw: Gateway, identity: str, password: str) -> int:
    """The HTTP status of an OCPP websocket upgrade (101 when the gateway lets the charger in)."""
    try:
        async with connect(
            f"ws://127.0.0.1:{gw.port}/ocpp/{identity}",
            subprotocols=["ocpp1.6"],
            additional_headers=basic(identity, password),
        ):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_blocked_charger_is_refused_by_the_gateway(cli, db: Database, database_url: str) -> None:
    await _network(cli)
    gw = Gateway(gateway_settings(database_url), db, "node-a")
    await gw.start("127.0.0.1", 0)
    try:
        assert await _upgrade_status(gw, "GENT-01", PASSWORD) == 101

        assert "blocked charger GENT-01" in (await cli("chargers", "block", "GENT-01")).output
        assert await _upgrade_status(gw, "GENT-01", PASSWORD) == 401  # though the password is right
        # what the upgrade check reads, checked as it checks
        loaded = await gw.chargers.load_charger("GENT-01")
        assert loaded is not None and not await gw.passwords.check(
            "GENT-01", loaded[0].password_hash, PASSWORD
        )
        listed = json.loads((await cli("chargers", "list", "--json")).stdout)
        assert [(c["identity"], c["blocked"]) for c in listed] == [("GENT-01", True)]
        assert "was blocked already" in (await cli("chargers", "block", "GENT-01")).output

        # a new password while blocked stays blocked; unblocking lets the charger in with it
        await cli("chargers", "update", "GENT-01", "--password", "new-password-22")
        assert await _upgrade_status(gw, "GENT-01", "new-password-22") == 401
        await cli("chargers", "unblock", "GENT-01")
        assert await _upgrade_status(gw, "GENT-01", "new-password-22") == 101
        assert await _upgrade_status(gw, "GENT-01", PASSWORD) == 401
    finally:
        await gw.stop()

    await cli("chargers", "block", "GENT-01")
    await _refused(cli, "chargers", "update", "GENT-01", "--security-profile", "3", says="unblock it first")
    await cli("chargers", "unblock", "GENT-01")
    await cli("chargers", "update", "GENT-01", "--security-profile", "3")
    await _refused(cli, "chargers", "block", "GENT-01", says="client certificate (security profile 3)")


async def test_charger_update_and_remove(cli, db: Database) -> None:
    await _network(cli)
    await cli("chargers", "update", "GENT-01", "--evse", "3257", "--evse", "3256", "--ocpp", "2.0.1")
    await cli("chargers", "update", "GENT-01", "--registration", "pending")
    async with db.session() as s:
        cp = await s.scalar(select(ChargePoint))
        assert (cp.ocpp_version.value, cp.registration_status.value) == ("2.0.1", "Pending")
    listed = json.loads((await cli("chargers", "list", "--json")).stdout)
    assert listed[0]["evses"] == 2 and listed[0]["location"] == "LOC1"

    await _refused(cli, "chargers", "update", "GENT-01", "--evse", "nope", says="'nope' is not an EVSE")
    await _refused(cli, "chargers", "update", "GENT-01", "--password", "short", says="at least 8 characters")
    await _refused(cli, "chargers", "update", "GENT-01", "--ocpp", "3.0", says="expected 1.6 or 2.0.1")
    await _refused(cli, "chargers", "update", "NOPE", "--ocpp", "1.6", says="unknown charger 'NOPE'")
    assert await _count(db, ChargePointEvse) == 2, "a refused update keeps the EVSEs"

    await _session(db, "GENT-01", active=True)
    await _refused(cli, "chargers", "remove", "GENT-01", says="has an open session (GENT-01-0)")
    async with db.session() as s:
        (await s.scalar(select(ChargingSession))).status = "COMPLETED"
    await _refused(
        cli,
        "chargers",
        "remove",
        "GENT-01",
        says="it has 1 session (kept for pricing and settlement); block it",
    )
    assert await _count(db, ChargePoint) == 1

    await _refused(
        cli, "chargers", "add", "GENT-02", "--password", PASSWORD, "--location", "LOC1", "--evse", "3257",
        says="evse '3257' already belongs to another charger",
    )  # fmt: skip
    await cli(
        "chargers", "update", "GENT-01", "--evse", "3256"
    )  # frees 3257 for a charger that never charges
    await cli("chargers", "add", "GENT-02", "--password", PASSWORD, "--location", "LOC1", "--evse", "3257")
    assert "removed charger GENT-02" in (await cli("chargers", "remove", "GENT-02")).output
    assert await _count(db, ChargePoint) == 1 and await _count(db, ChargePointEvse) == 1


async def test_blocked_token_is_refused_by_the_authorizer(cli, db: Database) -> None:
    await _network(cli)
    await cli("tokens", "add", "04A1B2C3", "--issuer", "DE*TNM", "--limit", "50", "--currency", "EUR")
    async with db.session() as s:
        charger_id = await s.scalar(select(ChargePoint.id))
    authorizer = Authorizer(db)  # the gateway's own decision on Authorize / StartTransaction

    assert (await authorizer.authorize("04A1B2C3", charge_point_id=charger_id)).status == ACCEPTED
    assert "blocked token 04A1B2C3" in (await cli("tokens", "block", "04A1B2C3")).output
    decision = await authorizer.authorize("04A1B2C3", charge_point_id=charger_id)
    assert decision.status == BLOCKED and decision.reason == "token is not valid"
    listed = json.loads((await cli("tokens", "list", "--json")).stdout)
    assert listed[0]["valid"] is False
    async with db.session() as s:
        assert (await s.scalar(select(Token))).data["valid"] is False  # the OCPI object says so too
    await cli("tokens", "unblock", "04A1B2C3")
    assert (await authorizer.authorize("04A1B2C3", charge_point_id=charger_id)).status == ACCEPTED


async def test_token_update_and_remove(cli, db: Database) -> None:
    await _network(cli)
    await cli("fleets", "add", "Acme Logistics")
    await cli("tokens", "add", "T-1", "--issuer", "DE*TNM", "--limit", "50", "--currency", "EUR")
    await cli(
        "tokens", "update", "T-1", "--fleet", "Acme Logistics", "--driver", "Ann", "--limit", "75.50",
        "--whitelist", "always",
    )  # fmt: skip
    async with db.session() as s:
        token = await s.scalar(select(Token))
        assert (token.monthly_limit, token.limit_currency, token.whitelist) == (
            Decimal("75.5"),
            "EUR",
            "ALWAYS",
        )
        assert token.driver_name == "Ann" and token.fleet_id is not None

    for args, says in (
        (["--limit", "10.005"], "amount 10.005 has more decimals than EUR has minor units (2)"),
        (["--limit", "-5"], "must not be negative"),
        (["--limit", "10", "--currency", "EUX"], "unknown currency 'EUX'"),
        (["--currency", "USD"], "--currency needs --limit"),
        (["--no-limit", "--limit", "5"], "not both"),
        (["--fleet", "Nope"], "unknown fleet 'Nope'"),
        (["--email", "ann-at-example"], "is not an email address"),
        (["--whitelist", "SOMETIMES"], "whitelist 'SOMETIMES'"),
    ):
        await _refused(cli, "tokens", "update", "T-1", *args, says=says)
    async with db.session() as s:
        token = await s.scalar(select(Token))
        assert token.monthly_limit == Decimal("75.5") and token.driver_email is None, (
            "refusals change nothing"
        )

    await cli("tokens", "update", "T-1", "--no-limit", "--no-fleet")
    async with db.session() as s:
        token = await s.scalar(select(Token))
        assert token.monthly_limit is None and token.limit_currency is None and token.fleet_id is None

    # the same uid at another issuer is refused (issue 13: a uid belongs to one issuer, any casing); the
    # issuer's own uid of another type makes the uid alone ambiguous
    await cli("parties", "add", "NL*EMS", "--role", "EMSP", "--name", "Roam")
    await _refused(
        cli, "tokens", "add", "t-1", "--issuer", "NL*EMS", says="'t-1' is already issued by another party"
    )
    await cli("tokens", "add", "T-1", "--issuer", "DE*TNM", "--type", "APP_USER")
    await _refused(cli, "tokens", "block", "t-1", says="2 tokens have uid 't-1'")
    await _session(db, "GENT-01", token_uid="T-1")  # the first T-1 (RFID) has charged once
    await _refused(
        cli,
        "tokens",
        "remove",
        "T-1",
        "--type",
        "RFID",
        says="it has 1 session (kept for pricing and settlement); block it",
    )
    assert (
        "removed token T-1 (APP_USER) of DE*TNM"
        in (await cli("tokens", "remove", "T-1", "--type", "APP_USER")).output
    )
    assert await _count(db, Token) == 1


async def test_party_update_and_remove(cli, db: Database) -> None:
    await _network(cli)
    await cli(
        "parties", "update", "BE*BEC", "--name", "Be Charged NV", "--website", "https://becharged.example"
    )
    listed = json.loads((await cli("parties", "list", "--json")).stdout)
    assert {
        "party": "BE*BEC",
        "role": "CPO",
        "name": "Be Charged NV",
        "website": "https://becharged.example",
    } in listed
    await _refused(
        cli, "parties", "update", "BE*BEC", "--website", "becharged", says="expected an http:// or https://"
    )
    await _refused(cli, "parties", "update", "BE*BEC", "--name", " ", says="name must not be empty")

    await _session(db, "GENT-01")
    await _refused(
        cli,
        "parties",
        "remove",
        "BE*BEC",
        says="party BE*BEC (CPO) cannot be removed: it has 1 session (kept for pricing",
    )
    await _refused(
        cli, "parties", "remove", "DE*TNM", "--role", "CPO", says="unknown party DE*TNM with role CPO"
    )

    await cli("parties", "add", "NL*AMP", "--role", "CPO", "--name", "AmsterPower")
    await cli("parties", "add", "NL*AMP", "--role", "EMSP", "--name", "AmsterPower Mobility")
    await cli("tokens", "add", "T-9", "--issuer", "NL*AMP")
    await _refused(
        cli, "parties", "remove", "NL*AMP", says="NL*AMP has roles CPO, EMSP: name one with --role"
    )
    await _refused(
        cli, "parties", "remove", "NL*AMP", "--role", "EMSP", says="still has 1 token: remove those first"
    )
    await cli("api-keys", "add", "amp-backoffice", "--cpo", "NL*AMP")
    assert "removed CPO NL*AMP" in (await cli("parties", "remove", "NL*AMP", "--role", "cpo")).output
    assert await _count(db, ApiKey) == 0, "the CPO's API keys go with it"
    assert await _count(db, Party) == 3


async def test_fleet_update_and_remove(cli, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await _network(cli, charger=False)
    await cli("fleets", "add", "Acme Logistics")
    await cli("fleets", "add", "Acme Rentals")
    monkeypatch.setenv("EVHUB_MANAGER_PASSWORD", "manager-password")
    await cli("fleets", "add-manager", "Acme L", "--email", "boss@acme.example")  # a unique prefix
    await cli("tokens", "add", "T-1", "--issuer", "DE*TNM", "--fleet", "Acme Logistics")

    await _refused(
        cli, "fleets", "update", "Acme", "--currency", "GBP", says="fleet id 'Acme' is ambiguous: 2 ids"
    )
    await _refused(cli, "fleets", "update", "Acme L", "--currency", "XYZ", says="unknown currency 'XYZ'")
    await _refused(
        cli, "fleets", "update", "Acme L", "--name", "Acme Rentals", says="'Acme Rentals' already exists"
    )
    await cli("fleets", "update", "Acme L", "--name", "Acme Haulage", "--currency", "gbp")
    listed = json.loads((await cli("fleets", "list", "--json")).stdout)
    assert {
        "fleet": "Acme Haulage",
        "currency": "GBP",
        "tokens": 1,
        "managers": ["boss@acme.example"],
    } in listed

    await _refused(cli, "fleets", "remove", "Acme H", says="fleet 'Acme Haulage' has 1 token: move them")
    await cli("tokens", "update", "T-1", "--no-fleet")
    assert "and 1 manager login(s)" in (await cli("fleets", "remove", "Acme H")).output
    assert await _count(db, Fleet) == 1 and await _count(db, FleetManager) == 0
    await _refused(cli, "fleets", "remove-manager", "nobody@acme.example", says="no fleet manager with email")


async def test_partner_update_unregister_remove(cli, db: Database) -> None:
    await _network(cli, charger=False)
    for name, role in (("Roam One", "DE*RO1"), ("Roam Two", "DE*RO2")):
        await cli("partners", "invite", name, "--cpo", "BE*BEC", "--role", role)
    partners = json.loads((await cli("partners", "list", "--json")).stdout)
    first, second = (p["id"] for p in partners)
    await cli("partners", "update", str(first), "--name", "Roam Uno", "--all-cpos")
    async with db.session() as s:
        p = await s.get(OcpiPartner, first)
        assert p.name == "Roam Uno" and p.allowed_cpo_ids is None
        (await s.get(OcpiPartner, second)).status = PartnerStatus.REGISTERED
    await _refused(
        cli, "partners", "update", str(first), "--cpo", "DE*TNM", says="DE*TNM is an EMSP, not a CPO"
    )
    await _refused(cli, "partners", "update", "999", "--name", "x", says="unknown partner '999'")
    await _refused(
        cli, "partners", "register", "not-a-url", "token", says="versions URL 'not-a-url': expected"
    )
    await _refused(cli, "partners", "invite", " ", says="partner name must not be empty")
    await _refused(cli, "partners", "invite", "Roam Three", says="name the roles the partner may register")
    await _refused(cli, "outbox", "list", "--limit", "0", says="--limit 0: expected at least 1")

    await _refused(cli, "partners", "remove", str(second), says="is registered: unregister it first")
    await cli("partners", "unregister", str(second), "--no-notify")
    async with db.session() as s:
        p = await s.get(OcpiPartner, second)
        assert p.status == PartnerStatus.UNREGISTERED and p.incoming_token_hash is None
    await cli("partners", "remove", str(second))
    await cli("partners", "remove", str(first))
    assert await _count(db, OcpiPartner) == 0


async def test_api_keys_and_outbox_by_prefix(cli, db: Database) -> None:
    await _network(cli, charger=False)
    await _refused(cli, "api-keys", "add", "tnm", "--cpo", "DE*TNM", says="DE*TNM is an EMSP, not a CPO")
    await _refused(cli, "api-keys", "add", "x", "--cpo", "NL*ZZZ", says="unknown CPO NL*ZZZ")
    assert await _count(db, ApiKey) == 0
    await cli("api-keys", "add", "becharged-backoffice", "--cpo", "BE*BEC")
    await cli("api-keys", "add", "becharged-billing", "--cpo", "BE*BEC")
    await _refused(cli, "api-keys", "revoke", "becharged", says="API key id 'becharged' is ambiguous: 2 ids")
    assert "revoked becharged-billing" in (await cli("api-keys", "revoke", "becharged-bi")).output
    keys = json.loads((await cli("api-keys", "list", "--json")).stdout)
    assert [(k["name"], k["scope"], k["revoked"]) for k in keys] == [
        ("becharged-backoffice", "CPO BE*BEC", False),
        ("becharged-billing", "CPO BE*BEC", True),
    ]

    async with db.session() as s:
        for status in (OutboxStatus.DEAD, OutboxStatus.DELIVERED):
            s.add(
                OutboxMessage(
                    channel="email", destination="a@b.example", ordering_key="k", payload={}, status=status
                )
            )
    rows = json.loads((await cli("outbox", "list", "--json")).stdout)
    dead = next(r["id"] for r in rows if r["status"] == "parked")
    delivered = next(r["id"] for r in rows if r["status"] == "delivered")
    await _refused(
        cli, "outbox", "retry", str(delivered), says=f"outbox message {delivered} is delivered, not parked"
    )
    assert "1 message(s) queued again" in (await cli("outbox", "retry", str(dead))).output
    assert await _count(db, OutboxMessage, OutboxMessage.status == OutboxStatus.PENDING) == 1


async def test_prefix_resolution_rules(cli, db: Database) -> None:
    """An exact id wins over longer ids it starts; LIKE wildcards in a prefix are plain characters; any case."""
    from evhub.cli._lookup import resolve_prefix
    from evhub.provisioning import ProvisioningError

    async with db.session() as s:
        for message_id in (1, 10, 11, 25):
            s.add(
                OutboxMessage(id=message_id, channel="email", destination="x", ordering_key="k", payload={})
            )
        for name in ("Fleet_A", "FleetXB", "fleet%c"):
            s.add(Fleet(name=name))
    async with db.session() as s:
        assert await resolve_prefix(s, OutboxMessage.id, "1", "outbox message") == "1"
        assert await resolve_prefix(s, OutboxMessage.id, "2", "outbox message") == "25"
        assert await resolve_prefix(s, Fleet.name, "FLEET_", "fleet") == "Fleet_A"  # not FleetXB
        assert await resolve_prefix(s, Fleet.name, "fleet%", "fleet") == "fleet%c"
        for column, given, says in (
            (OutboxMessage.id, "3", "unknown outbox message '3'"),
            (OutboxMessage.id, " ", "outbox message id must not be empty"),
            (Fleet.name, "fleet", "fleet id 'fleet' is ambiguous: 3 ids start with it"),
        ):
            with pytest.raises(ProvisioningError, match=says):
                await resolve_prefix(
                    s, column, given, "outbox message" if column is OutboxMessage.id else "fleet"
                )
    await _refused(cli, "outbox", "retry", "1", says="outbox message 1 is pending, not parked")
