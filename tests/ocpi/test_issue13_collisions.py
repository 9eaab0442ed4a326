"""Issue 13, token uid collisions across eMSPs: a token uid (its CiString key) belongs to ONE issuer across the
hub (:mod:`kernel.token_uids`). A push, pull, command token or ``evhub tokens add`` of a uid another issuer
holds is refused (2001 / REJECTED / one CLI line), logged and counted; concurrent claims never both win; rows
of several issuers stored before the rule are decided by the first stored; and the hub's own lookups find a
token under any casing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

from cpo_gateway.authorization import Authorizer
from evhub import lifecycle
from evhub import provisioning as prov
from evhub.app import create_app
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.domain.tokens import OcpiToken
from kernel.id_tags import ocpp16_id_tag
from kernel.models import Party, PartyRole, Token
from kernel.settings import load_settings
from kernel.timeutil import utcnow
from kernel.token_uids import UidTaken
from ocpi.modules.tokens import store_token
from simulators.emsp import EmspSimulator
from tests.ocpi._helpers import connect, install_fake_gateway, seed_site
from tests.ocpi.conftest import RunningHub
from tests.portal.helpers import csrf_token, login, portal_app, portal_client
from tests.world.api_network import ApiNetwork, seed_api_network
from tests.world.fleets import add_fleet_with_manager, base_world
from tests.world.fleets import add_token as add_fleet_token
from tests.world.sites import seed_cpo

LONG_UID = "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1"  # the uid of the spec's token_example_1_app_user.json


def _collisions(source: str) -> float:
    return REGISTRY.get_sample_value("evhub_token_uid_collisions_total", {"source": source}) or 0.0


async def _rows(db: Database, uid: str) -> list[tuple[str, str, str, bool]]:
    async with db.session() as s:
        tokens = (await s.scalars(select(Token).where(Token.uid_key == uid.upper()).order_by(Token.id))).all()
        return [(t.country_code, t.party_id, t.uid, t.valid) for t in tokens]


async def _intruder_row(db: Database, sim: EmspSimulator, uid: str, *, valid: bool = True) -> None:
    """A row of ``sim``'s party for ``uid`` written directly, as the hub stored it before the ownership rule."""
    async with db.session() as s:
        party = await s.scalar(
            select(Party).where(Party.country_code == sim.country_code, Party.party_id == sim.party_id)
        )
        assert party is not None
        s.add(
            Token(
                country_code=sim.country_code,
                party_id=sim.party_id,
                uid=uid,
                type="RFID",
                contract_id=f"{sim.country_code}-{sim.party_id}-X",
                issuer=sim.name,
                emsp_id=party.id,
                valid=valid,
                whitelist="ALLOWED",
                last_updated=utcnow() - timedelta(minutes=1),
            )
        )


async def test_a_push_of_a_uid_another_emsp_holds_is_refused(
    hub: RunningHub, sim: EmspSimulator, sim2: EmspSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """DE*EMS holds CARD-7: FR*OTH's PUT of card-7 (any casing, any type) is answered 2001 (HTTP 400) naming the
    uid but not the holder, nothing is stored, a warning is logged and the collision counted. The holder's own
    PUT (another casing) is still applied."""
    await seed_cpo(hub.db)
    await connect(hub, sim)
    await connect(hub, sim2)
    assert (await sim.push_token(sim.make_token("CARD-7"))).json()["status_code"] == 1000
    before = _collisions("ocpi")
    caplog.set_level(logging.WARNING, logger="kernel.token_uids")
    for uid, token_type in (("card-7", "RFID"), ("CARD-7", "APP_USER")):
        r = await sim2.push_token(sim2.make_token(uid, token_type=token_type))
        assert (r.status_code, r.json()["status_code"]) == (400, 2001), r.text
        message = r.json()["status_message"]
        assert uid in message and "another party" in message
        assert "DE" not in message and "EMS" not in message and sim.name not in message
    assert _collisions("ocpi") == before + 2
    assert any("held by another issuer" in r.getMessage() for r in caplog.records)
    assert await _rows(hub.db, "CARD-7") == [("DE", "EMS", "CARD-7", True)]
    r = await sim.push_token(sim.make_token("card-7", valid=False))
    assert r.json()["status_code"] == 1000, r.text
    assert await _rows(hub.db, "CARD-7") == [("DE", "EMS", "CARD-7", False)]


async def test_a_uid_matching_another_issuers_mapped_id_tag_is_refused(
    hub: RunningHub, sim: EmspSimulator, sim2: EmspSimulator
) -> None:
    """A 1.6 charger presents DE*EMS's 36-character uid as its mapped idTag (EVH + 17 hex digits): FR*OTH may
    not push a token whose uid is that idTag (the charger could not tell them apart)."""
    await seed_cpo(hub.db)
    await connect(hub, sim)
    await connect(hub, sim2)
    assert (await sim.push_token(sim.make_token(LONG_UID))).json()["status_code"] == 1000
    tag = ocpp16_id_tag("DE", "EMS", LONG_UID)
    r = await sim2.push_token(sim2.make_token(tag.lower()))
    assert (r.status_code, r.json()["status_code"]) == (400, 2001), r.text
    async with hub.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Token)) == 1


async def test_rows_stored_before_the_rule_the_intruder_cannot_write(
    hub: RunningHub, sim: EmspSimulator, sim2: EmspSimulator
) -> None:
    """A pre-rule row of FR*OTH for DE*EMS's uid (stored later, so not the holder's): FR*OTH's PATCH and PUT of
    it are refused (2001) and change nothing; DE*EMS's PATCH is applied."""
    await seed_cpo(hub.db)
    await connect(hub, sim)
    await connect(hub, sim2)
    assert (await sim.push_token(sim.make_token("SHARED-2"))).json()["status_code"] == 1000
    await _intruder_row(hub.db, sim2, "shared-2")
    auth2 = {"Authorization": f"Token {sim2.hub_token}", **sim2.routing()}
    auth1 = {"Authorization": f"Token {sim.hub_token}", **sim.routing()}
    patch = {"valid": False, "last_updated": "2099-01-01T00:00:00Z"}
    async with sim2.http() as http:
        r = await http.patch(f"{sim2._hub_url('tokens')}/FR/OTH/shared-2", json=patch, headers=auth2)
        assert (r.status_code, r.json()["status_code"]) == (400, 2001), r.text
    r = await sim2.push_token(sim2.make_token("shared-2", valid=False))
    assert (r.status_code, r.json()["status_code"]) == (400, 2001), r.text
    assert await _rows(hub.db, "SHARED-2") == [
        ("DE", "EMS", "SHARED-2", True),
        ("FR", "OTH", "shared-2", True),
    ]
    async with sim.http() as http:
        r = await http.patch(f"{sim._hub_url('tokens')}/DE/EMS/shared-2", json=patch, headers=auth1)
        assert r.json()["status_code"] == 1000, r.text
    assert (await _rows(hub.db, "SHARED-2"))[0] == ("DE", "EMS", "SHARED-2", False)


async def test_a_pulled_token_with_a_uid_another_emsp_holds_is_skipped(
    hub: RunningHub, sim: EmspSimulator, sim2: EmspSimulator
) -> None:
    """The tokens pull stores with the same function: FR*OTH's token list has DE*EMS's CARD-8 (as card-8) and
    its own OWN-8; the pull after its registration stores OWN-8 only."""
    await seed_cpo(hub.db)
    await connect(hub, sim)
    assert (await sim.push_token(sim.make_token("CARD-8"))).json()["status_code"] == 1000
    for uid in ("card-8", "OWN-8"):
        sim2.tokens[(uid, "RFID")] = sim2.make_token(uid)
    await connect(hub, sim2)  # waits for the pull the registration starts
    assert await _rows(hub.db, "CARD-8") == [("DE", "EMS", "CARD-8", True)]
    assert await _rows(hub.db, "OWN-8") == [("FR", "OTH", "OWN-8", True)]


async def _parties(db: Database) -> tuple[int, int]:
    async with db.session() as s:
        owner = Party(country_code="DE", party_id="EMS", role=PartyRole.EMSP, name="owner")
        other = Party(country_code="FR", party_id="OTH", role=PartyRole.EMSP, name="other")
        s.add_all([owner, other])
        await s.flush()
        return owner.id, other.id


def _token(cc: str, pid: str, uid: str, *, valid: bool = True) -> OcpiToken:
    return OcpiToken.model_validate(
        {
            "country_code": cc,
            "party_id": pid,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"{cc}{pid}C1",
            "issuer": pid,
            "valid": valid,
            "whitelist": "ALLOWED",
            "last_updated": utcnow(),
        }
    )


async def test_concurrent_pushes_of_one_uid_by_two_emsps_do_not_both_win(db: Database) -> None:
    """Two transactions store CONC-1 for two eMSPs at once: the first holds its uncommitted row while the second
    runs; the second must wait for it and then be refused (on PostgreSQL it waited on the uid's advisory lock
    — observed in pg_locks —, on SQLite on BEGIN IMMEDIATE). One row, the first eMSP's."""
    owner, other = await _parties(db)
    first_stored = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with db.session() as s:
            await store_token(s, owner, _token("DE", "EMS", "CONC-1"))
            first_stored.set()
            await release.wait()

    async def second() -> str:
        async with db.session() as s:
            try:
                await store_token(s, other, _token("FR", "OTH", "conc-1"))
            except UidTaken:
                return "refused"
            return "stored"

    one = asyncio.create_task(first())
    await asyncio.wait_for(first_stored.wait(), 10)
    two = asyncio.create_task(second())
    if not db.is_sqlite:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:  # the second transaction is waiting on the uid's advisory lock
            async with db.session() as s:
                waiting = await s.scalar(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                )
            if waiting or two.done():
                break
            assert loop.time() < deadline, "the second store never waited for the first"
            await asyncio.sleep(0.02)
        assert not two.done(), "the second store did not wait for the first transaction"
    release.set()
    await one
    assert await asyncio.wait_for(two, 30) == "refused"
    assert await _rows(db, "CONC-1") == [("DE", "EMS", "CONC-1", True)]


async def test_rows_of_several_issuers_the_first_stored_decides(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows stored before the rule: DE*EMS's SHARED-1 (first) and FR*OTH's shared-1 (later). The charger's
    Authorize resolves to DE*EMS's token under every casing: its block holds although FR*OTH's row is valid
    (it answered Accepted, FR*OTH's token, valid ones first), and once valid the session is DE*EMS's; the
    ambiguity is logged."""
    owner, other = await _parties(db)
    rows = [
        ("DE", "EMS", "SHARED-1", "C1", "owner", owner, False),
        ("FR", "OTH", "shared-1", "C2", "other", other, True),
    ]
    async with db.session() as s:
        # one flush each: DE*EMS's row is stored first
        for cc, pid, uid, contract, issuer, emsp, valid in rows:
            s.add(
                Token(
                    country_code=cc,
                    party_id=pid,
                    uid=uid,
                    contract_id=contract,
                    issuer=issuer,
                    emsp_id=emsp,
                    valid=valid,
                    last_updated=utcnow(),
                )
            )
            await s.flush()
    async with db.session() as s:
        owner_pk = await s.scalar(select(Token.id).where(Token.party_id == "EMS"))
    caplog.set_level(logging.WARNING, logger="kernel.token_uids")
    authorizer = Authorizer(db)
    for tag in ("SHARED-1", "shared-1", "Shared-1"):
        decision = await authorizer.authorize(tag, charge_point_id=1)
        assert (decision.status, decision.token_id) == ("Blocked", owner_pk), (tag, decision)
    assert any("held by several issuers" in r.getMessage() for r in caplog.records)
    async with db.session() as s:
        token = await s.get(Token, owner_pk)
        assert token is not None
        token.valid = True
    decision = await authorizer.authorize("shared-1", charge_point_id=1)
    assert (decision.status, decision.token_id) == ("Accepted", owner_pk)


async def test_start_session_with_a_uid_another_emsp_holds_is_rejected(
    hub: RunningHub, sim: EmspSimulator, sim2: EmspSimulator
) -> None:
    """FR*OTH's START_SESSION / RESERVE_NOW with its own token object for DE*EMS's uid (the charger would
    present it as DE*EMS's card, the session billed to DE*EMS) is REJECTED with a message; nothing reaches the
    charger and no token is stored for FR*OTH."""
    await seed_site(hub.db)
    await connect(hub, sim)
    await connect(hub, sim2)
    gw = install_fake_gateway(hub)
    assert (await sim.push_token(sim.make_token("CARD-9"))).json()["status_code"] == 1000
    token = sim2.make_token("card-9")
    _ref, answer = await sim2.start_session("LOC1", "LOC1-E1", "1", "card-9")
    assert answer["result"] == "REJECTED", answer
    assert "card-9" in answer["message"][0]["text"]
    _ref, answer = await sim2.command(
        "RESERVE_NOW",
        {
            "token": token,
            "expiry_date": "2030-01-01T00:00:00Z",
            "reservation_id": "RES-9",
            "location_id": "LOC1",
            "evse_uid": "LOC1-E1",
        },
    )
    assert answer["result"] == "REJECTED", answer
    await hub.dispatched()
    assert gw.calls == []
    assert await _rows(hub.db, "CARD-9") == [("DE", "EMS", "CARD-9", True)]


async def test_start_session_stores_a_token_the_hub_does_not_know(
    hub: RunningHub, sim: EmspSimulator
) -> None:
    """A START_SESSION whose 36-character token was never pushed: the token is stored as the eMSP's, so the
    mapped 1.6 idTag the charger presents resolves back to it (it was Invalid: unknown token)."""
    _cpo, _loc, cp = await seed_site(hub.db)
    await connect(hub, sim)
    install_fake_gateway(hub)
    token = sim.make_token(LONG_UID, token_type="APP_USER")
    ref, answer = await sim.command(
        "START_SESSION", {"token": token, "location_id": "LOC1", "evse_uid": "LOC1-E1", "connector_id": "1"}
    )
    assert answer["result"] == "ACCEPTED", answer
    await sim.wait_for(lambda: ref in sim.command_results)
    async with hub.db.session() as s:
        stored = await s.scalar(select(Token).where(Token.uid == LONG_UID))
        party = await s.scalar(select(Party).where(Party.party_id == "EMS"))
        assert stored is not None and party is not None and stored.emsp_id == party.id
    decision = await Authorizer(hub.db).authorize(ocpp16_id_tag("DE", "EMS", LONG_UID), charge_point_id=cp)
    assert decision.accepted and decision.token_id == stored.id


async def test_start_session_does_not_store_a_second_type_of_a_known_uid(
    hub: RunningHub, sim: EmspSimulator
) -> None:
    """The eMSP blocked its RFID card CARD-T; a START_SESSION naming it as an APP_USER token stores nothing
    (a valid second row of another type would outvote the block): the charger's Authorize stays Blocked."""
    _cpo, _loc, cp = await seed_site(hub.db)
    await connect(hub, sim)
    install_fake_gateway(hub)
    assert (await sim.push_token(sim.make_token("CARD-T", valid=False))).json()["status_code"] == 1000
    token = sim.make_token("card-t", token_type="APP_USER")
    ref, _answer = await sim.command(
        "START_SESSION", {"token": token, "location_id": "LOC1", "evse_uid": "LOC1-E1", "connector_id": "1"}
    )
    await sim.wait_for(lambda: ref in sim.command_results)
    assert await _rows(hub.db, "CARD-T") == [("DE", "EMS", "CARD-T", False)]
    decision = await Authorizer(hub.db).authorize("CARD-T", charge_point_id=cp)
    assert decision.status == "Blocked", decision


# ---- the hub's own CLI / API lookups


async def test_cli_add_refuses_a_uid_another_issuer_holds_and_finds_any_casing(db: Database) -> None:
    """``evhub tokens add``: a uid another eMSP holds is one clear error (ProvisioningError: one CLI line,
    exit 1) and counted; the same issuer's uid under another casing exists already (it added a second row);
    ``evhub tokens block card-5`` finds CARD-5."""
    await _parties(db)
    async with db.session() as s:
        await prov.add_token(s, prov.TokenSpec(uid="CARD-5", issuer_party="DE*EMS"))
    before = _collisions("cli")
    async with db.session() as s:
        with pytest.raises(prov.ProvisioningError, match="'card-5' is already issued by another party"):
            await prov.add_token(s, prov.TokenSpec(uid="card-5", issuer_party="FR*OTH"))
    assert _collisions("cli") == before + 1
    async with db.session() as s:
        with pytest.raises(prov.ProvisioningError, match="exists already"):
            await prov.add_token(s, prov.TokenSpec(uid="card-5", issuer_party="DE*EMS"))
    async with db.session() as s:
        token = await lifecycle.find_token(s, "card-5")
        assert token.uid == "CARD-5"
        assert await lifecycle.set_token_blocked(s, token, True)
    assert await _rows(db, "CARD-5") == [("DE", "EMS", "CARD-5", False)]


@pytest.fixture
async def api(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, ApiNetwork]]:
    world = await seed_api_network(db)
    settings = load_settings(database_url=db.url, api_auth=True, _env_file=None)
    hub = Hub(settings=settings, db=db, node_name="test")
    hub.app = create_app(hub)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        yield http, world


async def test_api_finds_a_token_under_any_casing_within_the_keys_scope(
    api: tuple[httpx.AsyncClient, ApiNetwork],
) -> None:
    """``GET /api/tokens/NL/EMS/token-ams`` finds TOKEN-AMS (it was a 404) for the hub's key and AmsterPower's
    (the token charged there); London's key still gets 404 under every casing."""
    http, world = api

    async def get(key: str, uid: str) -> httpx.Response:
        return await http.get(
            f"/api/tokens/nl/ems/{uid}", headers={"Authorization": f"Bearer {world.keys[key]}"}
        )

    for uid in ("token-ams", "Token-Ams", "TOKEN-AMS"):
        for key in ("hub", "amp"):
            r = await get(key, uid)
            assert r.status_code == 200 and r.json()["uid"] == "TOKEN-AMS", (key, uid, r.text)
        assert (await get("ldn", uid)).status_code == 404


async def test_portal_add_refuses_a_uid_another_issuer_holds(db: Database) -> None:
    """The fleet portal's "add token": Globex's manager adding acme01 (Acme's ACME01, another issuer) gets
    the message and no token is stored (it added a second card for the uid); a new uid is added once, and
    again under another casing it "already exists"."""
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    await add_fleet_with_manager(db, world, "Globex", "boss@globex.test")
    await add_fleet_token(db, world, "Acme", "ACME01")
    before = _collisions("portal")
    async with portal_client(portal_app(db), follow_redirects=True) as client:
        await login(client, "boss@globex.test")
        csrf = csrf_token((await client.get("/portal/tokens")).text)
        r = await client.post("/portal/tokens", data={"csrf_token": csrf, "uid": "acme01"})
        assert "Token acme01 is issued by another party" in r.text
        r = await client.post("/portal/tokens", data={"csrf_token": csrf, "uid": "GLOBEX-9"})
        assert "Token GLOBEX-9 added." in r.text
        r = await client.post("/portal/tokens", data={"csrf_token": csrf, "uid": "globex-9"})
        assert "Token globex-9 already exists." in r.text
    assert _collisions("portal") == before + 1
    assert [row[2] for row in await _rows(db, "ACME01")] == ["ACME01"]
    assert [row[2] for row in await _rows(db, "GLOBEX-9")] == ["GLOBEX-9"]
