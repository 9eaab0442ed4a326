"""Provisioning from the CLI: round trips, and bad input that exits non-zero and leaves nothing half-written."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from kernel.db.engine import Database
from kernel.models import EVSE, ChargePoint, ChargePointEvse, Connector, Location, Party, TariffVersion, Token
from kernel.security import verify_password
from tests.conftest import OCPI_EXAMPLES
from tests.world.demo_network import DEMO


async def _count(db: Database, model: type) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_full_provisioning_round_trip(cli, db: Database) -> None:
    await cli("parties", "add", "BE*BEC", "--role", "CPO", "--name", "BeCharged")
    await cli("parties", "add", "DE*TNM", "--role", "emsp", "--name", "TheNewMotion")
    out = (await cli("parties", "list")).output
    assert "BE*BEC" in out and "EMSP" in out
    await cli("locations", "import", str(OCPI_EXAMPLES / "location_example.json"), "--grid-zone", "BE-EAST")
    assert "LOC1" in (await cli("locations", "list")).output
    await cli(
        "chargers",
        "add",
        "GENT-01",
        "--password",
        "s3cret-password",
        "--location",
        "LOC1",
        "--evse",
        "3256",
        "--evse",
        "3257",
        "--ocpp",
        "2.0.1",
    )
    assert "GENT-01" in (await cli("chargers", "list")).output
    await cli(
        "tokens",
        "add",
        "12345678905880",
        "--issuer",
        "DE*TNM",
        "--driver",
        "Ann",
        "--email",
        "ann@example.com",
        "--limit",
        "150.00",
        "--currency",
        "eur",
    )
    assert "150.00 EUR" in (await cli("tokens", "list")).output

    async with db.session() as s:
        loc = await s.scalar(select(Location))
        assert (loc.time_zone, loc.grid_zone, loc.latitude) == ("Europe/Brussels", "BE-EAST", "51.047599")
        cp = await s.scalar(select(ChargePoint))
        assert cp.password_hash and "s3cret" not in cp.password_hash
        assert verify_password(cp.password_hash, "s3cret-password")
        assert not verify_password(cp.password_hash, "wrong")
        mapping = (await s.scalars(select(ChargePointEvse).order_by(ChargePointEvse.ocpp_evse_id))).all()
        evses = {e.id: e.uid for e in (await s.scalars(select(EVSE))).all()}
        assert [(m.ocpp_evse_id, evses[m.evse_pk]) for m in mapping] == [(1, "3256"), (2, "3257")]
        token = await s.scalar(select(Token))
        assert token.limit_currency == "EUR" and token.monthly_limit == Decimal("150")
    assert await _count(db, Connector) == 3

    # Re-importing the same location updates it, it does not duplicate it.
    await cli("locations", "import", str(OCPI_EXAMPLES / "location_example.json"))
    assert await _count(db, Location) == 1 and await _count(db, EVSE) == 2


async def test_bad_input_exits_nonzero_and_writes_nothing(cli, db: Database, tmp_path: Path) -> None:
    await cli("parties", "add", "BE*BEC", "--role", "CPO", "--name", "BeCharged")
    good = json.loads((OCPI_EXAMPLES / "location_example.json").read_text())
    bad = dict(good, id="LOC2", time_zone="Mars/Olympus")
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([dict(good, id="LOC0"), bad]))
    result = await cli("locations", "import", str(mixed), ok=False)
    assert result.exit_code != 0
    assert "time_zone" in result.output and "Mars/Olympus" in result.output
    assert await _count(db, Location) == 0, "the valid location of a failed import must not be kept"

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = await cli("locations", "import", str(broken), ok=False)
    assert result.exit_code != 0 and "not valid JSON" in result.output
    result = await cli("locations", "import", str(tmp_path / "missing.json"), ok=False)
    assert result.exit_code != 0 and "no such file" in result.output

    unknown_cpo = tmp_path / "unknown.json"
    unknown_cpo.write_text(json.dumps(dict(good, party_id="ZZZ")))
    result = await cli("locations", "import", str(unknown_cpo), ok=False)
    assert result.exit_code != 0 and "unknown CPO BE*ZZZ" in result.output

    await cli("locations", "import", str(OCPI_EXAMPLES / "location_example.json"))
    result = await cli(
        "chargers",
        "add",
        "CP-X",
        "--password",
        "long-enough",
        "--location",
        "LOC1",
        "--evse",
        "3256",
        "--evse",
        "nope",
        ok=False,
    )
    assert result.exit_code != 0 and "'nope' is not an EVSE" in result.output
    assert await _count(db, ChargePoint) == 0 and await _count(db, ChargePointEvse) == 0

    result = await cli("parties", "add", "BE*BEC", "--role", "CPO", "--name", "again", ok=False)
    assert result.exit_code != 0 and "exists already" in result.output
    result = await cli("parties", "add", "BE*BEC", "--role", "KING", "--name", "x", ok=False)
    assert result.exit_code != 0 and "role 'KING'" in result.output
    result = await cli("tokens", "add", "T1", "--issuer", "NL*NOP", ok=False)
    assert result.exit_code != 0 and "unknown EMSP NL*NOP" in result.output
    assert await _count(db, Party) == 1 and await _count(db, Token) == 0


async def test_values_are_validated_where_they_enter(cli, db: Database) -> None:
    """ISO country and currency codes, amounts in the currency's minor unit, URLs, emails, roles that fit."""
    await cli(
        "parties", "add", "BE*BEC", "--role", "CPO", "--name", "BeCharged", "--website", "https://bec.example"
    )
    await cli("parties", "add", "NL*EMS", "--role", "EMSP", "--name", "Roam")
    for args, says in (
        (["parties", "add", "XX*ABC", "--role", "CPO", "--name", "x"], "'XX': not an ISO 3166-1 alpha-2"),
        (["parties", "add", "NL*ABC", "--role", "CPO", "--name", "x", "--website", "ftp://x"], "website 'ftp://x'"),
        (["tokens", "add", "T1", "--issuer", "NL*EMS", "--limit", "10.005", "--currency", "EUR"],
         "amount 10.005 has more decimals than EUR has minor units (2)"),
        (["tokens", "add", "T1", "--issuer", "NL*EMS", "--limit", "-10", "--currency", "EUR"], "must not be negative"),
        (["tokens", "add", "T1", "--issuer", "NL*EMS", "--limit", "1.5", "--currency", "JPY"],
         "more decimals than JPY has minor units (0)"),
        (["tokens", "add", "T1", "--issuer", "NL*EMS", "--limit", "10", "--currency", "EUX"], "unknown currency 'EUX'"),
        (["tokens", "add", "T1", "--issuer", "NL*EMS", "--limit", "10"], "invalid currency code ''"),
        (["tokens", "add", "T1", "--issuer", "NL*EMS", "--currency", "EUR"], "--currency needs --limit"),
        (["tokens", "add", "T1", "--issuer", "NL*EMS", "--email", "ann@localhost"], "is not an email address"),
        (["tokens", "add", "T1", "--issuer", "BE*BEC"], "BE*BEC is a CPO, not an EMSP"),
        (["api-keys", "add", "roam", "--cpo", "NL*EMS"], "NL*EMS is an EMSP, not a CPO"),
        (["api-keys", "add", "nobody", "--cpo", "NL*NOP"], "unknown CPO NL*NOP"),
        (["fleets", "add", "Acme", "--currency", "EURO"], "invalid currency code 'EURO'"),
    ):  # fmt: skip
        result = await cli(*args, ok=False)
        assert result.exit_code == 1 and says in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert await _count(db, Token) == 0 and await _count(db, Party) == 2, "nothing half-written"
    await cli("tokens", "add", "T1", "--issuer", "NL*EMS", "--limit", "1500", "--currency", "jpy")
    async with db.session() as s:
        token = await s.scalar(select(Token))
        assert (token.monthly_limit, token.limit_currency) == (Decimal("1500"), "JPY")


async def test_every_list_prints_json(cli, db: Database) -> None:
    await cli("parties", "add", "BE*BEC", "--role", "CPO", "--name", "BeCharged")
    await cli("parties", "add", "DE*TNM", "--role", "EMSP", "--name", "TheNewMotion")
    await cli("locations", "import", str(OCPI_EXAMPLES / "location_example.json"))
    await cli("parties", "add", "NL*AMP", "--role", "CPO", "--name", "AmsterPower")
    await cli("parties", "add", "GB*LDN", "--role", "CPO", "--name", "London Charge Co")
    await cli("tariffs", "import", str(DEMO / "tariffs.json"))
    await cli("tokens", "add", "T1", "--issuer", "DE*TNM", "--limit", "150", "--currency", "EUR")

    def listed(result) -> list:
        return json.loads(result.stdout)

    parties = [p["party"] for p in listed(await cli("parties", "list", "--json"))]
    assert parties == ["BE*BEC", "DE*TNM", "GB*LDN", "NL*AMP"]
    [loc] = listed(await cli("locations", "list", "--json"))
    assert (loc["id"], loc["cpo"], [e["uid"] for e in loc["evses"]]) == ("LOC1", "BE*BEC", ["3256", "3257"])
    [tok] = listed(await cli("tokens", "list", "--json"))
    assert (tok["uid"], tok["valid"], tok["monthly_limit"], tok["limit_currency"]) == (
        "T1",
        True,
        "150",
        "EUR",
    )
    tariffs = listed(await cli("tariffs", "list", "--json"))
    assert [(t["id"], t["cpo"], t["version"], t["currency"]) for t in tariffs] == [
        ("AMS-TOD", "NL*AMP", 1, "EUR"),
        ("LDN-STD", "GB*LDN", 1, "GBP"),
    ]
    assert listed(await cli("chargers", "list", "--json")) == []
    for group in ("fleets", "partners", "outbox", "api-keys", "sessions"):
        assert listed(await cli(group, "list", "--json")) == [], group


async def test_tariff_with_a_currency_that_is_not_iso_4217_is_refused(
    cli, db: Database, tmp_path: Path
) -> None:
    await cli("parties", "add", "NL*AMP", "--role", "CPO", "--name", "AmsterPower")
    demo = json.loads((DEMO / "tariffs.json").read_text())
    tariff = next(t for t in demo if t["id"] == "AMS-TOD")
    bad = tmp_path / "tariff.json"
    bad.write_text(json.dumps([dict(tariff, id="GOOD"), dict(tariff, currency="EUX")]))
    result = await cli("tariffs", "import", str(bad), ok=False)
    assert (
        result.exit_code == 1
        and "invalid OCPI Tariff 'AMS-TOD': currency: unknown currency 'EUX'" in result.output
    )
    assert await _count(db, TariffVersion) == 0, "the valid tariff of a failed import must not be kept"
