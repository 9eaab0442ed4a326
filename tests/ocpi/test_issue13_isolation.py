"""Issue 13, isolation between partners and the parties the hub hosts (S1: roles a partner may register; S2: the
tariff quote of another CPO's location; S3: a command's response_url outside the partner's hosts).

Every breach is tried through the real handshake and the real HTTP surface, over the in-process network."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from evhub.app import create_app
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Location, Party, PartyRole
from kernel.models.outbox import OutboxMessage
from kernel.models.reservations import Reservation
from kernel.models.roaming import (
    CommandState,
    OcpiAuthorization,
    OcpiPartner,
    OcpiPendingCommand,
    PartnerStatus,
)
from kernel.settings import load_settings
from kernel.timeutil import utcnow
from ocpi import credentials
from ocpi.partners import invite_partner, role_key
from simulators.emsp import EmspSimulator
from tariffs.component import PricingComponent
from tests.ocpi._helpers import FakeGateway, connect, hosted_fleet_card, token_pk
from tests.ocpi._network import InProcessNetwork
from tests.ocpi.conftest import RunningHub, _simulator
from tests.world.api_network import ApiNetwork, seed_api_network
from tests.world.sessions import seed_session
from tests.world.sites import seed_charge_point, seed_cpo, seed_location


@pytest.fixture
async def evil(network: InProcessNetwork | None) -> AsyncIterator[EmspSimulator]:
    """A partner that claims NL*EVH, the hub's own fleet eMSP in the demo."""
    async for s in _simulator(network, "evil.test", country_code="NL", party_id="EVH", name="Evil eMSP"):
        yield s


async def _status(db: Database, partner_id: int) -> tuple[PartnerStatus, list[tuple[str, str, str]]]:
    async with db.session() as s:
        p = await s.get(OcpiPartner, partner_id)
        assert p is not None
        return p.status, [(r.country_code, r.party_id, r.role) for r in p.roles]


async def test_s1_a_partner_cannot_register_as_the_hubs_own_emsp(
    hub: RunningHub, evil: EmspSimulator, db: Database
) -> None:
    """S1: an invitation names the roles the partner may register: one without roles is refused (2001) and
    nothing is stored; a partner invited for another party that registers as NL*EVH (the hub's fleet eMSP) is
    refused with 2001 (HTTP 400) and stays invited: it never reads the fleet's sessions, CDRs or tokens."""
    await hosted_fleet_card(db, "FLEET-0001")
    with pytest.raises(credentials.HandshakeError, match="names the roles") as caught:
        await credentials.invite(hub.db, hub.platform, evil.name)
    assert caught.value.code == 2001
    async with db.session() as s:
        assert (await s.scalars(select(OcpiPartner))).all() == []
    inv = await credentials.invite(hub.db, hub.platform, evil.name, roles=[("NL", "EVX", "EMSP")])
    with pytest.raises(RuntimeError, match=r"HTTP 400.*2001.*not a role this partner was invited for"):
        await evil.register(inv.versions_url, inv.token_a)
    assert await _status(db, inv.partner_id) == (PartnerStatus.INVITED, [("NL", "EVX", "EMSP")])


async def test_s1_an_invitation_stored_without_roles_registers_nothing(
    hub: RunningHub, evil: EmspSimulator, db: Database
) -> None:
    """S1: an invitation stored before roles were required (an invited partner with no roles) cannot be used
    to claim any party, not even a new one (2001, HTTP 400); the partner stays invited."""
    inv = await credentials.invite(hub.db, hub.platform, evil.name, roles=[("NL", "EVX", "EMSP")])
    async with db.session() as s:
        partner = await s.get(OcpiPartner, inv.partner_id)
        assert partner is not None
        partner.roles = []  # as an invitation of the earlier rule was stored
    evil.party_id = "NEW"
    with pytest.raises(RuntimeError, match=r"HTTP 400.*2001.*names no roles"):
        await evil.register(inv.versions_url, inv.token_a)
    assert await _status(db, inv.partner_id) == (PartnerStatus.INVITED, [])


async def test_s1_an_operator_added_emsp_is_claimed_only_through_an_invitation_naming_it(
    hub: RunningHub, evil: EmspSimulator, db: Database
) -> None:
    """S1: a party the operator added (no partner's role, no fleet) is hosted: an invitation for another party
    may not claim it (2001); an invitation naming it may."""
    async with db.session() as s:
        s.add(Party(country_code="NL", party_id="EVH", role=PartyRole.EMSP, name="added by the operator"))
    inv = await credentials.invite(hub.db, hub.platform, evil.name, roles=[("NL", "EVX", "EMSP")])
    with pytest.raises(RuntimeError, match=r"HTTP 400.*2001"):
        await evil.register(inv.versions_url, inv.token_a)
    assert (await _status(db, inv.partner_id))[0] == PartnerStatus.INVITED

    named = await credentials.invite(hub.db, hub.platform, "named", roles=[("NL", "EVH", "EMSP")])
    await evil.register(named.versions_url, named.token_a)
    assert await _status(db, named.partner_id) == (PartnerStatus.REGISTERED, [("NL", "EVH", "EMSP")])


async def test_s1_the_hubs_own_emsp_cannot_be_invited(hub: RunningHub, db: Database) -> None:
    """S1: an invitation for a fleet's eMSP or a hosted CPO is refused (2001), nothing is stored."""
    await hosted_fleet_card(db, "FLEET-0001")
    async with db.session() as s:
        s.add(Party(country_code="NL", party_id="AMP", role=PartyRole.CPO, name="AmsterPower"))
    for role in [("NL", "EVH", "EMSP"), ("NL", "AMP", "CPO")]:
        with pytest.raises(credentials.HandshakeError, match="hosted on this platform") as caught:
            await credentials.invite(hub.db, hub.platform, "x", roles=[role])
        assert caught.value.code == 2001
    async with db.session() as s:
        assert (await s.scalars(select(OcpiPartner))).all() == []


async def test_s1_roles_must_be_the_invited_ones(hub: RunningHub, sim: EmspSimulator, db: Database) -> None:
    """S1: a partner invited for FR*OTH registering as DE*EMS is refused (2001); invited for DE*EMS, it
    registers, and a later PUT cannot add a role it was not invited for."""
    wrong = await credentials.invite(hub.db, hub.platform, sim.name, roles=[("FR", "OTH", "EMSP")])
    with pytest.raises(RuntimeError, match=r"HTTP 400.*2001.*not a role this partner was invited for"):
        await sim.register(wrong.versions_url, wrong.token_a)
    assert (await _status(db, wrong.partner_id))[0] == PartnerStatus.INVITED

    right = await credentials.invite(hub.db, hub.platform, sim.name, roles=[("DE", "EMS", "EMSP")])
    await sim.register(right.versions_url, right.token_a)
    assert await _status(db, right.partner_id) == (PartnerStatus.REGISTERED, [("DE", "EMS", "EMSP")])

    sim.country_code, sim.party_id = "FR", "NEW"
    with pytest.raises(RuntimeError, match=r"HTTP 400.*2001.*not a role this partner was invited for"):
        await sim.rotate()
    assert await _status(db, right.partner_id) == (PartnerStatus.REGISTERED, [("DE", "EMS", "EMSP")])


def test_s1_invite_roles_as_the_cli_takes_them() -> None:
    """S1: ``evhub partners invite --role`` takes COUNTRY*PARTY (an eMSP) or COUNTRY*PARTY:ROLE and refuses
    anything else, so an invitation never records a malformed role."""
    assert role_key("nl*ems") == ("NL", "EMS", "EMSP")
    assert role_key("DE*ABC:cpo") == ("DE", "ABC", "CPO")
    for bad in ("NLEMS", "N*EMS", "NL*EM", "NL*EMS:KING", ""):
        with pytest.raises(ValueError, match="expected COUNTRY\\*PARTY"):
            role_key(bad)


async def test_s1_invite_partner_records_the_roles(hub: RunningHub, sim: EmspSimulator, db: Database) -> None:
    """S1: the CLI helper's invitation with roles limits the registration to them."""
    inv = await invite_partner(hub.db, hub.url, sim.name, roles=[role_key("FR*OTH")])
    assert await _status(db, inv.partner_id) == (PartnerStatus.INVITED, [("FR", "OTH", "EMSP")])
    with pytest.raises(RuntimeError, match="2001"):
        await sim.register(inv.versions_url, inv.token_a)


# ---- S2: quotes of another CPO's location


@pytest.fixture
async def api_world(db: Database) -> ApiNetwork:
    return await seed_api_network(db)


@pytest.fixture
async def api(db: Database, api_world: ApiNetwork) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(database_url=db.url, api_auth=True, _env_file=None)
    hub = Hub(settings=settings, db=db, node_name="test")
    hub.app = create_app(hub)
    PricingComponent().install(hub)  # /api/tariffs/quote (not started: nothing is rated in the background)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        yield http


async def _quote(api: httpx.AsyncClient, world: ApiNetwork, key: str, location: str) -> httpx.Response:
    return await api.post(
        "/api/tariffs/quote",
        json={"location_id": location, "planned_kwh": "10", "duration_minutes": 60},
        headers={"Authorization": f"Bearer {world.keys[key]}"},
    )


async def test_s2_a_cpo_key_cannot_quote_another_cpos_location(
    api: httpx.AsyncClient, api_world: ApiNetwork, db: Database
) -> None:
    """S2: AmsterPower's key quotes its own AMS-CENTRAAL, published or not; London's key gets 404 for it,
    exactly as for a location that does not exist (published or not); the hub operator's key quotes both."""
    for published in (True, False):
        async with db.session() as s:
            await s.execute(
                update(Location).where(Location.ocpi_id == "AMS-CENTRAAL").values(publish=published)
            )
        assert (await _quote(api, api_world, "amp", "AMS-CENTRAAL")).status_code == 200
        assert (await _quote(api, api_world, "hub", "AMS-CENTRAAL")).status_code == 200
        foreign = await _quote(api, api_world, "ldn", "AMS-CENTRAAL")
        missing = await _quote(api, api_world, "ldn", "NO-SUCH-LOC")
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == {"detail": "unknown location 'AMS-CENTRAAL'"}
        assert missing.json() == {"detail": "unknown location 'NO-SUCH-LOC'"}
    assert (await _quote(api, api_world, "ldn", "LDN-KINGSX")).status_code == 200


# ---- S3: response_url on the partner's registered hosts only

FOREIGN_URLS = [
    "http://evil.test/steal",  # a host the partner never registered
    "http://emsp-de.test:8081/x",  # the partner's host, another port
    "http://169.254.169.254/latest/meta-data/",  # a cloud metadata address
    "not a url",
    "file:///etc/passwd",
    "ftp://emsp-de.test/x",
]


async def test_s3_a_response_url_outside_the_partners_hosts_is_refused(
    hub: RunningHub, sim: EmspSimulator, db: Database, network: InProcessNetwork
) -> None:
    """S3: START_SESSION, UNLOCK_CONNECTOR and RESERVE_NOW with a response_url that is not an http(s) URL on a
    host (and port) of the partner's credentials (versions URL, endpoints) answer 2001 (HTTP 400); no pending
    command, reservation or authorization is stored, the charger is not called and nothing is ever sent there.
    The partner's own response_url is accepted and gets the result."""
    hits: list[str] = []

    async def evil_app(scope, receive, send):  # type: ignore[no-untyped-def]
        hits.append(scope.get("path", ""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    network.serve("evil.test", evil_app)
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    await seed_charge_point(hub.db, cpo, loc)
    await connect(hub, sim)
    gw = FakeGateway()
    hub.services.gateway = gw
    token = sim.make_token("APP-1")
    commands = {
        "START_SESSION": {
            "token": token,
            "location_id": "LOC1",
            "evse_uid": "LOC1-E1",
            "connector_id": "1",
            "authorization_reference": "REF-1",
        },
        "UNLOCK_CONNECTOR": {"location_id": "LOC1", "evse_uid": "LOC1-E1", "connector_id": "1"},
        "RESERVE_NOW": {
            "token": token,
            "expiry_date": "2030-01-01T00:00:00Z",
            "reservation_id": "RES-1",
            "location_id": "LOC1",
            "evse_uid": "LOC1-E1",
        },
    }
    url = sim._hub_url("commands")
    auth = {"Authorization": f"Token {sim.hub_token}", **sim.routing()}
    async with sim.http() as http:
        for command, body in commands.items():
            for bad in FOREIGN_URLS:
                r = await http.post(f"{url}/{command}", json={**body, "response_url": bad}, headers=auth)
                assert (r.status_code, r.json()["status_code"]) == (400, 2001), (command, bad, r.text)
                assert "response_url" in r.json()["status_message"]
    async with db.session() as s:
        assert (await s.scalars(select(OcpiPendingCommand))).all() == []
        assert (await s.scalars(select(Reservation))).all() == []
        assert (await s.scalars(select(OcpiAuthorization))).all() == []
    assert gw.calls == []
    ref, response = await sim.command("UNLOCK_CONNECTOR", commands["UNLOCK_CONNECTOR"])
    assert response["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results)
    await hub.dispatched()
    assert hits == []


async def test_s3_a_result_for_a_foreign_response_url_recorded_earlier_is_never_sent(
    hub: RunningHub, sim: EmspSimulator, db: Database
) -> None:
    """S3: a pending command stored before the rule (response_url on another host) is finished by the recovery
    job without queueing anything for that URL; one on the partner's host is queued as before."""
    partner_id = await connect(hub, sim)
    past = utcnow() - timedelta(minutes=5)
    own = f"{sim.base_url}/emsp/2.2.1/commands/UNLOCK_CONNECTOR/ok"
    async with db.session() as s:
        for url in ("http://169.254.169.254/latest/meta-data/", own):
            s.add(
                OcpiPendingCommand(
                    partner_id=partner_id,
                    module="commands",
                    command="UNLOCK_CONNECTOR",
                    reference="LOC1/LOC1-E1/1",
                    response_url=url,
                    routing={},
                    timeout=2,
                    deadline=past,
                    state=CommandState.PENDING,
                )
            )
    assert await hub.platform.command_runner().recover() == 2
    async with db.session() as s:
        assert {r.state for r in (await s.scalars(select(OcpiPendingCommand))).all()} == {CommandState.SENT}
        queued = (
            await s.scalars(select(OutboxMessage).where(OutboxMessage.ordering_key.like("%:command:%")))
        ).all()
        assert [m.payload["url"] for m in queued] == [own]


async def test_s3_charging_profile_requests_refuse_a_foreign_response_url(
    hub: RunningHub, sim: EmspSimulator, db: Database
) -> None:
    """S3: ChargingProfiles PUT / DELETE / GET with a response_url off the partner's hosts answer 2001 (HTTP
    400), nothing is recorded and the charger is not called."""
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    cp = await seed_charge_point(hub.db, cpo, loc, "CP-SC")
    await connect(hub, sim)
    await sim.push_token(sim.make_token("SC-1"))
    await seed_session(hub.db, cpo, cp, loc, await token_pk(hub.db, "SC-1"), "SESS-SC", tx="42")
    sent: list[str] = []

    class Gw:
        async def send(self, identity, action, payload, timeout=None):  # type: ignore[no-untyped-def]
            sent.append(action)
            return {"status": "Accepted"}

    hub.services.gateway = Gw()
    url = f"{sim._hub_url('chargingprofiles')}/SESS-SC"
    auth = {"Authorization": f"Token {sim.hub_token}", **sim.routing()}
    profile = {"charging_rate_unit": "W", "charging_profile_period": [{"start_period": 0, "limit": 11000}]}
    bad = "http://evil.test/profiles"
    async with sim.http() as http:
        answers = [
            await http.put(url, json={"charging_profile": profile, "response_url": bad}, headers=auth),
            await http.delete(url, params={"response_url": bad}, headers=auth),
            await http.get(url, params={"response_url": bad, "duration": 3600}, headers=auth),
        ]
    assert [(r.status_code, r.json()["status_code"]) for r in answers] == [(400, 2001)] * 3
    assert sent == []
    async with db.session() as s:
        assert (await s.scalars(select(OcpiPendingCommand))).all() == []
