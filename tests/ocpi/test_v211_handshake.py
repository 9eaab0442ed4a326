"""OCPI 2.1.1 next to 2.2.1 (issue 13 item 4): the client's version keyword, the versions and details the hub
offers, the credentials handshake in both directions with a 2.1.1 eMSP simulator (and a 2.2.1 one on the same
hub), version negotiation and the token rules (A -> C, rotation, unregistration, 405s, 3001/3002/3003)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import select

from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.security import hash_token
from ocpi import client, credentials
from ocpi.credentials_211 import Credentials211, role_of
from simulators.emsp import EmspSimulator
from tests.ocpi._helpers import connect
from tests.ocpi._network import InProcessNetwork
from tests.ocpi._shapes import check, check_response
from tests.ocpi.conftest import _simulator
from tests.ocpi.cpo_partner_kit import add_hosted_emsp
from tests.world.sites import seed_cpo

MODULES = ("locations", "sessions", "cdrs", "tariffs", "tokens", "commands")


def _echo() -> tuple[FastAPI, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []
    app = FastAPI()

    @app.api_route("/x", methods=["GET", "POST"])
    async def x(request: Request) -> dict:
        seen.append(dict(request.headers))
        return {"status_code": 1000, "data": None, "timestamp": "2026-12-01T00:00:00Z"}

    return app, seen


ROUTING = {
    "OCPI-from-country-code": "NL",
    "OCPI-from-party-id": "CPO",
    "OCPI-to-country-code": "DE",
    "OCPI-to-party-id": "EMS",
}


async def test_client_sends_the_raw_token_and_no_routing_headers_in_211():
    app, seen = _echo()
    transport = httpx.ASGITransport(app=app)
    await client.request("POST", "http://p.test/x", "tok-1", json={}, headers=ROUTING, transport=transport)
    await client.request(
        "POST", "http://p.test/x", "tok-1", json={}, headers=ROUTING, transport=transport, version="2.1.1"
    )
    v221, v211 = seen
    assert v221["authorization"] == "Token " + base64.b64encode(b"tok-1").decode()
    assert v221["ocpi-to-party-id"] == "EMS"
    assert v211["authorization"] == "Token tok-1"
    assert not any(h.startswith("ocpi-") for h in v211)
    assert v211["x-request-id"] and v211["x-correlation-id"]
    assert v211["content-type"] == "application/json"


# --------------------------------------------------------------------------------------------- the world


@pytest.fixture
async def sim211(network: InProcessNetwork | None) -> AsyncIterator[EmspSimulator]:
    """An OCPI 2.1.1 eMSP (it refuses base64 tokens, as a 2.1.1 peer would)."""
    async for s in _simulator(
        network, "emsp-211.test", country_code="DE", party_id="OLD", name="Old eMSP", version="2.1.1"
    ):
        yield s


async def _partner(db, partner_id: int) -> OcpiPartner:
    async with db.session() as s:
        p = await s.get(OcpiPartner, partner_id)
        assert p is not None
        return p


def _raw(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def _b64(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


# ------------------------------------------------------------------------------- versions and details


async def test_versions_list_both_and_211_details_have_no_roles(hub):
    inv = await credentials.invite(hub.db, hub.platform, "Anyone", roles=[("DE", "OLD", "EMSP")])
    async with hub.http() as http:
        r = await http.get(inv.versions_url, headers=_raw(inv.token_a))
        assert r.json()["data"] == [
            {"version": "2.2.1", "url": f"{hub.url}/ocpi/2.2.1"},
            {"version": "2.1.1", "url": f"{hub.url}/ocpi/2.1.1"},
        ]
        assert check_response(r.json(), "Version", "2.2.1", many=True) == []
        r = await http.get(f"{hub.url}/ocpi/2.1.1", headers=_raw(inv.token_a))
        details = r.json()
        assert check_response(details, "VersionDetails", "2.1.1") == []
        endpoints = details["data"]["endpoints"]
        assert {e["identifier"]: e["url"] for e in endpoints} == {
            "credentials": f"{hub.url}/ocpi/2.1.1/credentials",
            **{m: f"{hub.url}/ocpi/cpo/2.1.1/{m}" for m in MODULES},
        }
        assert all(set(e) == {"identifier", "url"} for e in endpoints)
        r = await http.get(f"{hub.url}/ocpi/2.2.1", headers=_raw(inv.token_a))
        assert all("role" in e for e in r.json()["data"]["endpoints"])
        r = await http.get(f"{hub.url}/ocpi/2.0", headers=_raw(inv.token_a))
        assert r.status_code == 404


# ------------------------------------------------------------------------------ the partner registers


async def test_211_partner_registers_with_the_hub_next_to_a_221_one(hub, sim, sim211):
    await seed_cpo(hub.db, "NL", "CPO", "First CPO")
    await seed_cpo(hub.db, "BE", "CP2", "Second CPO")
    inv = await credentials.invite(hub.db, hub.platform, "Old eMSP", roles=[("DE", "OLD", "EMSP")])
    data = await sim211.register(inv.versions_url, inv.token_a)

    # one party: the hub's face is its first hosted CPO; 2.1.1 Credentials exactly
    assert check(data, "Credentials", "2.1.1") == []
    assert (data["country_code"], data["party_id"], data["business_details"]) == (
        "NL",
        "CPO",
        {"name": "First CPO"},
    )
    assert data["url"] == inv.versions_url and data["token"] != inv.token_a
    p = await _partner(hub.db, inv.partner_id)
    assert p.status == PartnerStatus.REGISTERED and p.version == "2.1.1"
    assert p.outgoing_token == sim211.my_token and p.incoming_token_hash == hash_token(data["token"])
    assert [(r.country_code, r.party_id, r.role) for r in p.roles] == [("DE", "OLD", "EMSP")]
    assert {e["identifier"] for e in p.endpoints} == {"credentials", *MODULES}
    assert p.endpoint("cdrs") == f"{sim211.url}/ocpi/emsp/2.1.1/cdrs"  # 2.1.1 endpoints have no role
    # the hub read the simulator's 2.1.1 details with the raw token (the simulator refuses base64)
    assert sim211.hub_endpoints and sim211.hub_endpoints[0]["identifier"] == "credentials"

    # a 2.2.1 partner on the same hub still registers in 2.2.1
    await connect(hub, sim)
    async with hub.db.session() as s:
        versions = {p.name: p.version for p in (await s.scalars(select(OcpiPartner))).all()}
    assert versions == {"Old eMSP": "2.1.1", "Sim eMSP": "2.2.1"}

    token_c = data["token"]
    cred_url = f"{hub.url}/ocpi/2.1.1/credentials"
    async with hub.http() as http:
        r = await http.get(inv.versions_url, headers=_raw(inv.token_a))
        assert r.status_code == 401  # token A is dead
        r = await http.get(cred_url, headers=_raw(token_c))
        assert r.json()["data"] == data
        r = await http.get(cred_url, headers=_b64(token_c))  # the hub accepts either form
        assert r.status_code == 200
        r = await http.post(cred_url, json=sim211.credentials("x" * 10), headers=_raw(token_c))
        assert r.status_code == 405
    assert await sim211.fetch_all("locations") == []


async def test_face_is_the_first_allowed_cpo(hub, sim211):
    await seed_cpo(hub.db, "NL", "CPO", "First CPO")
    second = await seed_cpo(hub.db, "BE", "CP2", "Second CPO")
    await add_hosted_emsp(hub.db, "NL*EVH")  # towards an eMSP partner the face stays a CPO
    inv = await credentials.invite(
        hub.db, hub.platform, "Old eMSP", allowed_cpo_ids=[second], roles=[("DE", "OLD", "EMSP")]
    )
    data = await sim211.register(inv.versions_url, inv.token_a)
    assert (data["country_code"], data["party_id"]) == ("BE", "CP2")


async def test_a_cpo_partner_is_named_the_hosted_emsp_as_face(hub, sim211):
    """Towards a 2.1.1 CPO the hub is its eMSP: its one-party Credentials name the first hosted eMSP, the
    party its tokens are PUT under (``/tokens/NL/EVH/{uid}``); an eMSP partner still gets the CPO face."""
    await seed_cpo(hub.db, "NL", "CPO", "First CPO")
    await add_hosted_emsp(hub.db, "NL*EVH")
    inv = await credentials.invite(hub.db, hub.platform, "Old CPO", roles=[("DE", "OLD", "CPO")])
    data = await sim211.register(inv.versions_url, inv.token_a)
    assert (data["country_code"], data["party_id"]) == ("NL", "EVH")
    assert data["business_details"]["name"] == "hosted eMSP NL*EVH"
    async with hub.http() as http:
        again = await http.get(f"{hub.url}/ocpi/2.1.1/credentials", headers=_raw(data["token"]))
    assert (again.json()["data"]["country_code"], again.json()["data"]["party_id"]) == ("NL", "EVH")
    p = await _partner(hub.db, inv.partner_id)
    assert [(r.party_id, r.role) for r in p.roles] == [("OLD", "CPO")]
    sim211.hub_roles = []
    await credentials.rotate(hub.db, hub.platform, inv.partner_id)  # the hub PUTs its credentials
    assert [(r["country_code"], r["party_id"]) for r in sim211.hub_roles] == [("NL", "EVH")]


async def test_invited_roles_are_enforced_for_the_211_party(hub, sim211):
    await seed_cpo(hub.db)
    inv = await credentials.invite(hub.db, hub.platform, "Someone", roles=[("FR", "OTH", "EMSP")])
    with pytest.raises(RuntimeError, match="2001"):
        await sim211.register(inv.versions_url, inv.token_a)
    p = await _partner(hub.db, inv.partner_id)
    assert p.status == PartnerStatus.INVITED
    inv = await credentials.invite(hub.db, hub.platform, "Old eMSP", roles=[("DE", "OLD", "EMSP")])
    await sim211.register(inv.versions_url, inv.token_a)
    p = await _partner(hub.db, inv.partner_id)
    assert [(r.country_code, r.party_id, r.role) for r in p.roles] == [("DE", "OLD", "EMSP")]


async def test_the_version_is_the_one_whose_credentials_are_posted(hub, sim, sim211):
    """3002 when the partner does not offer the version it posts to; 3001 when it cannot be reached; a 2.1.1
    credentials object that is not one is 2001."""
    await seed_cpo(hub.db)
    inv = await credentials.invite(hub.db, hub.platform, "Any", roles=[("DE", "OLD", "EMSP")])
    async with hub.http() as http:
        # the 2.1.1 simulator's credentials posted to the 2.2.1 endpoint: it offers no 2.2.1
        body = {
            "token": "tok-b",
            "url": sim211.versions_url,
            "roles": [
                {"role": "EMSP", "party_id": "OLD", "country_code": "DE", "business_details": {"name": "x"}}
            ],
        }
        sim211.my_token = "tok-b"
        r = await http.post(f"{hub.url}/ocpi/2.2.1/credentials", json=body, headers=_b64(inv.token_a))
        assert r.status_code == 400 and r.json()["status_code"] == 3002, r.text
        # the 2.2.1 simulator's versions posted to the 2.1.1 endpoint: it offers no 2.1.1
        sim.my_token = "tok-b2"
        body211 = {**sim211.credentials("tok-b2"), "url": sim.versions_url}
        r = await http.post(f"{hub.url}/ocpi/2.1.1/credentials", json=body211, headers=_raw(inv.token_a))
        assert r.status_code == 400 and r.json()["status_code"] == 3002, r.text
        unreachable = {**body211, "url": "http://127.0.0.1:9/ocpi/versions"}
        r = await http.post(f"{hub.url}/ocpi/2.1.1/credentials", json=unreachable, headers=_raw(inv.token_a))
        assert r.json()["status_code"] == 3001
        incomplete = {"token": "secret-b", "url": "u", "party_id": "TOOLONG"}
        r = await http.post(f"{hub.url}/ocpi/2.1.1/credentials", json=incomplete, headers=_raw(inv.token_a))
        assert r.status_code == 400 and r.json()["status_code"] == 2001
        message = r.json()["status_message"]
        assert "business_details" in message and "party_id" in message and "secret-b" not in message
    p = await _partner(hub.db, inv.partner_id)
    assert p.status == PartnerStatus.INVITED and p.version is None


async def test_details_without_credentials_endpoint_is_3003(hub, network):
    assert network is not None  # the in-process network of a test not marked real_sockets
    bare = FastAPI()

    @bare.get("/versions")
    async def versions() -> dict:
        return {"status_code": 1000, "data": [{"version": "2.1.1", "url": "http://bare.test/2.1.1"}]}

    @bare.get("/2.1.1")
    async def details() -> dict:
        endpoints = [{"identifier": "locations", "url": "http://bare.test/locations"}]
        return {"status_code": 1000, "data": {"version": "2.1.1", "endpoints": endpoints}}

    network.serve("bare.test", bare)
    await seed_cpo(hub.db)
    inv = await credentials.invite(hub.db, hub.platform, "Bare", roles=[("DE", "BAR", "EMSP")])
    body = {
        "token": "t",
        "url": "http://bare.test/versions",
        "business_details": {"name": "Bare"},
        "party_id": "BAR",
        "country_code": "DE",
    }
    async with hub.http() as http:
        r = await http.post(f"{hub.url}/ocpi/2.1.1/credentials", json=body, headers=_raw(inv.token_a))
    assert r.status_code == 400 and r.json()["status_code"] == 3003
    with pytest.raises(credentials.HandshakeError) as raised:
        await credentials.register(hub.db, hub.platform, "http://bare.test/versions", "a")
    assert raised.value.code == 3003


# ------------------------------------------------------------------------------- the hub registers


@pytest.mark.real_sockets
async def test_hub_registers_with_the_highest_mutual_version(hub, sim, sim211):
    """Over loopback HTTP: the hub's real network client meets 2.1.1 and 2.2.1 partners."""
    await seed_cpo(hub.db)
    # a 2.1.1-only partner (that also lists a 2.0 the hub does not speak): 2.1.1, in 2.1.1 form
    sim211.extra_versions = [{"version": "2.0", "url": f"{sim211.url}/ocpi/2.0"}]
    partner = await credentials.register(hub.db, hub.platform, sim211.versions_url, sim211.token_a)
    p = await _partner(hub.db, partner.id)
    assert p.version == "2.1.1" and p.status == PartnerStatus.REGISTERED and p.name == "Old eMSP"
    assert p.outgoing_token == sim211.my_token and p.incoming_token_hash == hash_token(sim211.hub_token)
    assert [(r.country_code, r.party_id, r.role) for r in p.roles] == [("DE", "OLD", "EMSP")]
    posted = next(x for x in sim211.log if x.method == "POST" and x.path.endswith("/credentials"))
    assert check(posted.body, "Credentials", "2.1.1") == []
    assert posted.headers["authorization"] == f"Token {sim211.token_a}"  # raw
    assert not any(h.startswith("ocpi-") for h in posted.headers)
    assert sim211.hub_roles[0]["party_id"] == "CPO"
    assert await sim211.fetch_all("locations") == []
    # a partner offering 2.2.1 and 2.1.1: 2.2.1
    sim.extra_versions = [{"version": "2.1.1", "url": f"{sim.url}/ocpi/2.1.1"}]
    partner = await credentials.register(hub.db, hub.platform, sim.versions_url, sim.token_a)
    assert (await _partner(hub.db, partner.id)).version == "2.2.1"


async def test_211_rotation_both_ways_and_unregistration(hub, sim211):
    await seed_cpo(hub.db)
    inv = await credentials.invite(hub.db, hub.platform, "Old eMSP", roles=[("DE", "OLD", "EMSP")])
    await sim211.register(inv.versions_url, inv.token_a)
    old_c = sim211.hub_token
    await sim211.rotate()  # the partner PUTs new credentials
    assert sim211.hub_token != old_c
    async with hub.http() as http:
        r = await http.get(inv.versions_url, headers=_raw(old_c))
        assert r.status_code == 401
    p = await _partner(hub.db, inv.partner_id)
    assert p.outgoing_token == sim211.my_token and p.version == "2.1.1"
    # the hub rotates: PUT of its 2.1.1 credentials with the raw token
    before = p.outgoing_token
    await credentials.rotate(hub.db, hub.platform, inv.partner_id)
    put = [x for x in sim211.log if x.method == "PUT" and x.path.endswith("/credentials")][-1]
    assert put.headers["authorization"] == f"Token {before}" and check(put.body, "Credentials", "2.1.1") == []
    p = await _partner(hub.db, inv.partner_id)
    assert p.outgoing_token == sim211.my_token != before
    assert p.incoming_token_hash == hash_token(sim211.hub_token)
    assert await sim211.fetch_all("locations") == []
    # the partner unregisters
    last = sim211.hub_token
    assert await sim211.unregister() == 200
    p = await _partner(hub.db, inv.partner_id)
    assert p.status == PartnerStatus.UNREGISTERED and p.outgoing_token is None
    async with hub.http() as http:
        r = await http.delete(f"{hub.url}/ocpi/2.1.1/credentials", headers=_raw(last))
        assert r.status_code == 401


async def test_hub_unregisters_from_a_211_partner(hub, sim211):
    await seed_cpo(hub.db)
    partner = await credentials.register(hub.db, hub.platform, sim211.versions_url, sim211.token_a)
    await credentials.unregister(hub.db, partner.id, transport=hub.transport)
    assert not sim211.registered  # the DELETE reached it with the raw token
    assert (await _partner(hub.db, partner.id)).status == PartnerStatus.UNREGISTERED


async def test_405s_of_the_211_credentials(hub, sim211):
    await seed_cpo(hub.db)
    inv = await credentials.invite(hub.db, hub.platform, "Old eMSP", roles=[("DE", "OLD", "EMSP")])
    cred_url = f"{hub.url}/ocpi/2.1.1/credentials"
    async with hub.http() as http:
        r = await http.put(cred_url, json=sim211.credentials("t"), headers=_raw(inv.token_a))
        assert r.status_code == 405
        r = await http.delete(cred_url, headers=_raw(inv.token_a))
        assert r.status_code == 405


async def test_a_partner_uses_the_modules_of_its_version(hub, sim, sim211):
    await seed_cpo(hub.db)
    await connect(hub, sim)
    await connect(hub, sim211)
    async with hub.http() as http:
        r = await http.get(
            f"{hub.url}/ocpi/cpo/2.2.1/locations", headers={**_b64(sim211.hub_token), **ROUTING}
        )
        assert r.status_code == 404 and r.json()["status_code"] == 2000
        assert "2.1.1" in r.json()["status_message"]
        r = await http.get(f"{hub.url}/ocpi/cpo/2.1.1/locations", headers=_b64(sim.hub_token))
        assert r.status_code == 404 and r.json()["status_code"] == 2000
        assert "2.2.1" in r.json()["status_message"]
        r = await http.get(f"{hub.url}/ocpi/cpo/2.1.1/locations", headers=_raw("nope"))
        assert r.status_code == 401


@pytest.fixture
async def sim221_old(network: InProcessNetwork | None) -> AsyncIterator[EmspSimulator]:
    """The same party as ``sim211`` (DE*OLD), upgraded to 2.2.1."""
    async for s in _simulator(
        network, "emsp-old-221.test", country_code="DE", party_id="OLD", name="Old eMSP"
    ):
        yield s


async def test_a_put_to_the_221_credentials_switches_a_211_partner_to_221(hub, sim211, sim221_old):
    """OCPI credentials PUT: "A PUT will switch to the version that contains this credentials endpoint"."""
    await seed_cpo(hub.db)
    partner_id = await connect(hub, sim211)
    assert (await _partner(hub.db, partner_id)).version == "2.1.1"
    new_b = "upgraded-b"
    sim221_old.my_token = new_b  # what the hub presents to the upgraded platform from now on
    async with hub.http() as http:
        r = await http.put(
            f"{hub.url}/ocpi/2.2.1/credentials",
            json=sim221_old.credentials(new_b),
            headers=_b64(sim211.hub_token),
        )
    assert r.status_code == 200 and r.json()["status_code"] == 1000, r.text
    answer = r.json()["data"]
    assert [(x["country_code"], x["party_id"], x["role"]) for x in answer["roles"]] == [("NL", "CPO", "CPO")]
    p = await _partner(hub.db, partner_id)
    assert p.version == "2.2.1" and p.outgoing_token == new_b
    assert p.endpoint("locations") == f"{sim221_old.url}/ocpi/emsp/2.2.1/locations"
    await sim221_old._learn_hub(answer["url"], answer["token"])
    sim221_old.hub_roles = answer["roles"]
    assert await sim221_old.fetch_all("locations") == []
    async with hub.http() as http:
        r = await http.get(f"{hub.url}/ocpi/cpo/2.1.1/locations", headers=_raw(answer["token"]))
    assert r.status_code == 404 and r.json()["status_code"] == 2000


def test_the_211_party_takes_its_invited_role_emsp_first():
    creds = Credentials211(
        token="t", url="u", business_details={"name": "x"}, party_id="old", country_code="de"
    )
    assert role_of(creds, {("DE", "OLD", "CPO"), ("DE", "OLD", "EMSP")}) == "EMSP"
    assert role_of(creds, {("DE", "OLD", "CPO")}) == "CPO"
    assert role_of(creds, {("FR", "OTH", "CPO")}) == "EMSP"  # not invited: refused later by the role rules
    assert role_of(creds, set()) == "EMSP"
