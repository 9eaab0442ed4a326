"""Credentials handshake both ways, rotation, unregistration, and token handling. In-process (see conftest),
except the handshake the eMSP starts and the CLI helpers, which run over loopback HTTP (uvicorn) on purpose:
the one path where the hub's real network client and server meet a partner's."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.security import hash_token
from ocpi import credentials
from tests.world.sites import seed_cpo


async def _partner(db, partner_id: int) -> OcpiPartner:
    async with db.session() as s:
        p = await s.get(OcpiPartner, partner_id)
        assert p is not None
        return p


@pytest.mark.real_sockets
async def test_partner_registers_with_hub_token_a_b_c(hub, sim):
    await seed_cpo(hub.db, "NL", "CPO", "First CPO")
    await seed_cpo(hub.db, "BE", "CP2", "Second CPO")
    inv = await credentials.invite(hub.db, hub.platform, "Sim eMSP", roles=[("DE", "EMS", "EMSP")])
    data = await sim.register(inv.versions_url, inv.token_a)

    # one credentials object with a CPO role per hosted CPO
    assert {(r["country_code"], r["party_id"], r["role"]) for r in data["roles"]} == {
        ("NL", "CPO", "CPO"),
        ("BE", "CP2", "CPO"),
    }
    token_c = data["token"]
    assert token_c != inv.token_a
    p = await _partner(hub.db, inv.partner_id)
    assert p.status == PartnerStatus.REGISTERED
    assert p.outgoing_token == sim.my_token  # token B: the hub calls the simulator with it
    assert p.incoming_token_hash == hash_token(token_c)  # only the hash of C is kept
    assert [(r.country_code, r.party_id, r.role) for r in p.roles] == [("DE", "EMS", "EMSP")]
    assert {e["identifier"] for e in p.endpoints} >= {"locations", "sessions", "cdrs", "tokens", "commands"}

    async with hub.http() as http:
        # token A is dead now; token C works, base64 (2.2.1) or raw (older peers)
        r = await http.get(
            inv.versions_url,
            headers={"Authorization": "Token " + base64.b64encode(inv.token_a.encode()).decode()},
        )
        assert r.status_code == 401
        r = await http.get(
            inv.versions_url,
            headers={"Authorization": "Token " + base64.b64encode(token_c.encode()).decode()},
        )
        assert r.status_code == 200 and r.json()["status_code"] == 1000
        r = await http.get(inv.versions_url, headers={"Authorization": f"Token {token_c}"})
        assert r.status_code == 200
        assert r.headers["X-Request-ID"] and r.headers["X-Correlation-ID"]
        r = await http.get(inv.versions_url, headers={"X-Request-ID": "abc", "X-Correlation-ID": "xyz"})
        assert r.status_code == 401 and r.json()["status_code"] == 2000
        assert r.headers["X-Request-ID"] == "abc" and r.headers["X-Correlation-ID"] == "xyz"
        # a second POST is refused (405), GET shows the current credentials
        cred_url = f"{hub.url}/ocpi/2.2.1/credentials"
        auth = {"Authorization": f"Token {token_c}"}
        r = await http.post(cred_url, json=sim.credentials("x" * 10), headers=auth)
        assert r.status_code == 405
        r = await http.get(cred_url, headers=auth)
        assert r.json()["data"]["token"] == token_c


async def test_hub_registers_with_partner(hub, sim):
    await seed_cpo(hub.db)
    partner = await credentials.register(hub.db, hub.platform, sim.versions_url, sim.token_a)
    assert sim.registered
    p = await _partner(hub.db, partner.id)
    assert p.status == PartnerStatus.REGISTERED
    assert p.outgoing_token == sim.my_token  # token C from the simulator
    assert p.incoming_token_hash == hash_token(sim.hub_token)  # token B the simulator calls us with
    assert p.name == "Sim eMSP"
    # the simulator can now use the hub with the token it was given
    tokens = await sim.fetch_all("locations")
    assert tokens == []


async def test_rotation_both_ways_and_unregister(hub, sim):
    await seed_cpo(hub.db)
    inv = await credentials.invite(hub.db, hub.platform, "Sim", roles=[("DE", "EMS", "EMSP")])
    await sim.register(inv.versions_url, inv.token_a)
    old_c = sim.hub_token
    # the partner rotates (PUT)
    await sim.rotate()
    assert sim.hub_token != old_c
    async with hub.http() as http:
        r = await http.get(inv.versions_url, headers={"Authorization": f"Token {old_c}"})
        assert r.status_code == 401
    assert await sim.fetch_all("locations") == []
    p = await _partner(hub.db, inv.partner_id)
    assert p.outgoing_token == sim.my_token
    # the hub rotates (PUT at the partner)
    before_out = p.outgoing_token
    await credentials.rotate(hub.db, hub.platform, inv.partner_id)
    p = await _partner(hub.db, inv.partner_id)
    assert p.outgoing_token == sim.my_token != before_out
    assert p.incoming_token_hash == hash_token(sim.hub_token)
    assert await sim.fetch_all("locations") == []
    # the partner unregisters (DELETE): its token stops working
    last = sim.hub_token
    assert await sim.unregister() == 200
    p = await _partner(hub.db, inv.partner_id)
    assert p.status == PartnerStatus.UNREGISTERED and p.outgoing_token is None
    async with hub.http() as http:
        r = await http.get(inv.versions_url, headers={"Authorization": f"Token {last}"})
        assert r.status_code == 401
        r = await http.delete(f"{hub.url}/ocpi/2.2.1/credentials", headers={"Authorization": f"Token {last}"})
        assert r.status_code == 401


async def test_hub_unregisters(hub, sim):
    await seed_cpo(hub.db)
    partner = await credentials.register(hub.db, hub.platform, sim.versions_url, sim.token_a)
    await credentials.unregister(hub.db, partner.id, transport=hub.transport)
    assert not sim.registered
    async with hub.db.session() as s:
        rows = (await s.scalars(select(OcpiPartner))).all()
        assert [r.status for r in rows] == [PartnerStatus.UNREGISTERED]


async def test_registration_with_unreachable_partner_changes_nothing(hub, sim):
    await seed_cpo(hub.db)
    inv = await credentials.invite(hub.db, hub.platform, "Sim", roles=[("DE", "EMS", "EMSP")])
    async with hub.http() as http:
        body = {
            "token": "tok-b",
            "url": "http://127.0.0.1:9/ocpi/versions",
            "roles": [
                {"role": "EMSP", "party_id": "EMS", "country_code": "DE", "business_details": {"name": "x"}}
            ],
        }
        r = await http.post(
            f"{hub.url}/ocpi/2.2.1/credentials", json=body, headers={"Authorization": f"Token {inv.token_a}"}
        )
        assert r.json()["status_code"] == 3001
        # still invited, token A still valid
        r = await http.get(inv.versions_url, headers={"Authorization": f"Token {inv.token_a}"})
        assert r.status_code == 200
        r = await http.post(
            f"{hub.url}/ocpi/2.2.1/credentials",
            content=b"{not json",
            headers={"Authorization": f"Token {inv.token_a}"},
        )
        assert r.status_code == 400 and r.json()["status_code"] == 2001
    p = await _partner(hub.db, inv.partner_id)
    assert p.status == PartnerStatus.INVITED and [(r.country_code, r.party_id) for r in p.roles] == [
        ("DE", "EMS")
    ]


@pytest.mark.real_sockets
async def test_cli_helpers_and_partners_api(hub, sim):
    from ocpi.partners import invite_partner, list_partners, register_partner

    await seed_cpo(hub.db)
    row = await register_partner(hub.db, hub.url, sim.versions_url, sim.token_a)
    assert row.status == "registered" and row.roles == ["DE*EMS EMSP"]
    inv = await invite_partner(hub.db, hub.url, "Later partner", roles=[("FR", "LAT", "EMSP")])
    assert inv.versions_url == f"{hub.url}/ocpi/versions" and inv.token_a
    assert [p.status for p in await list_partners(hub.db)] == ["registered", "invited"]
    async with hub.http() as http:
        r = await http.get(f"{hub.url}/api/partners")
        assert [p["name"] for p in r.json()] == ["Sim eMSP", "Later partner"]
        r = await http.get(f"{hub.url}/api/partners/{row.id}/health")
        body = r.json()
        assert body["healthy"] is True and body["outbox"]["pending"] == 0
        r = await http.get(f"{hub.url}/api/partners/999/health")
        assert r.status_code == 404
