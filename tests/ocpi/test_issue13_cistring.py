"""Issue 13, CiString defect (C1): OCPI 2.2.1 makes token uid, location/EVSE/connector ids, session and CDR ids
CiString ("case-insensitive"): another casing addresses the same object, and a token blocked under one casing is
blocked under every casing."""

from __future__ import annotations

from sqlalchemy import func, select

from cpo_gateway.authorization import Authorizer
from kernel.models import Token
from tests.ocpi._helpers import connect, install_fake_gateway, seed_site, token_pk
from tests.world.cdrs import seed_cdr
from tests.world.sessions import seed_session
from tests.world.sites import seed_cpo, seed_location


def _auth(sim) -> dict[str, str]:
    return {"Authorization": f"Token {sim.hub_token}", **sim.routing()}


async def _count_tokens(hub) -> int:
    async with hub.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Token)) or 0)


async def test_token_blocked_under_another_casing_is_blocked_at_the_charger(hub, sim):
    """C1: the eMSP pushes casetest1 (valid), then blocks it as CASETEST1: one token row, not valid, and the
    gateway's authorizer answers Blocked for every casing (it answered Accepted for casetest1)."""
    _cpo, loc, cp = await seed_site(hub.db)
    await connect(hub, sim)
    r = await sim.push_token(sim.make_token("casetest1"))
    assert r.json()["status_code"] == 1000, r.text
    r = await sim.push_token(sim.make_token("CASETEST1", valid=False))
    assert r.json()["status_code"] == 1000, r.text
    assert await _count_tokens(hub) == 1
    stored = await token_pk(hub.db, "casetest1")
    assert stored.valid is False
    authorizer = Authorizer(hub.db, hub.services)
    for tag in ("casetest1", "CASETEST1", "CaseTest1"):
        decision = await authorizer.authorize(tag, charge_point_id=cp, location_id=loc)
        assert decision.status == "Blocked", (tag, decision)


async def test_token_get_put_patch_under_another_casing_address_one_token(hub, sim):
    """C1: GET tokens/.../peer-app-0001 finds PEER-APP-0001; a PATCH and a PUT under other casings change that
    token (never a second row); a PUT whose body uid differs from the URL only in casing is accepted."""
    await seed_cpo(hub.db)
    await connect(hub, sim)
    first = sim.make_token("PEER-APP-0001", token_type="APP_USER")
    r = await sim.push_token({**first, "last_updated": "2026-03-01T10:00:00Z"})  # before the PATCH below
    assert r.json()["status_code"] == 1000, r.text
    base = f"{sim._hub_url('tokens')}/{sim.country_code.lower()}/{sim.party_id.lower()}"
    async with sim.http() as http:
        r = await http.get(f"{base}/peer-app-0001", params={"type": "APP_USER"}, headers=_auth(sim))
        assert r.status_code == 200 and r.json()["data"]["uid"] == "PEER-APP-0001", r.text
        r = await http.patch(
            f"{base}/Peer-App-0001",
            params={"type": "APP_USER"},
            json={"valid": False, "last_updated": "2026-03-02T10:00:00Z"},
            headers=_auth(sim),
        )
        assert r.json()["status_code"] == 1000, r.text
        assert (await token_pk(hub.db, "PEER-APP-0001")).valid is False
        body = sim.make_token("PEER-APP-0001", token_type="APP_USER", valid=True)
        r = await http.put(
            f"{base}/peer-app-0001", params={"type": "APP_USER"}, json=body, headers=_auth(sim)
        )
        assert r.json()["status_code"] == 1000, r.text
    assert await _count_tokens(hub) == 1
    assert (await token_pk(hub.db, "PEER-APP-0001")).valid is True


async def test_location_evse_connector_session_cdr_ids_ignore_case(hub, sim):
    """C1: loc1 / loc1-e1 / connector ids name LOC1 / LOC1-E1; GET sessions and CDRs by an upper-cased id find
    them; STOP_SESSION with the session id upper-cased is ACCEPTED and reaches the gateway with the stored id
    (it answered UNKNOWN_SESSION)."""
    cpo, loc, cp = await seed_site(hub.db)
    await connect(hub, sim)
    gw = install_fake_gateway(hub)
    await sim.push_token(sim.make_token("card-1"))
    token = await token_pk(hub.db, "card-1")
    session_uid = "0f8e2c1a-6b1d-4c5e-9a7b-3d2e1f0a9b8c"
    session_pk = await seed_session(hub.db, cpo, cp, loc, token, session_uid)
    await seed_cdr(hub.db, session_pk, cpo, token.emsp_id, "cdr-abc-1")
    async with sim.http() as http:
        for path in ("loc1", "loc1/loc1-e1", "Loc1/LOC1-e1/1"):
            r = await http.get(f"{sim._hub_url('locations')}/{path}", headers=_auth(sim))
            assert r.status_code == 200 and r.json()["status_code"] == 1000, (path, r.text)
        r = await http.get(f"{sim._hub_url('locations')}/loc1", headers=_auth(sim))
        assert r.json()["data"]["id"] == "LOC1"
        r = await http.get(f"{sim._hub_url('sessions')}/{session_uid.upper()}", headers=_auth(sim))
        assert r.status_code == 200 and r.json()["data"]["id"] == session_uid, r.text
        r = await http.get(f"{sim._hub_url('cdrs')}/CDR-ABC-1", headers=_auth(sim))
        assert r.status_code == 200 and r.json()["data"]["id"] == "cdr-abc-1", r.text
    ref, response = await sim.stop_session(session_uid.upper())
    assert response["result"] == "ACCEPTED", response
    await sim.wait_for(lambda: ref in sim.command_results)
    name, kwargs = gw.calls[-1]
    assert name == "stop_session" and kwargs["session_uid"] == session_uid


async def test_commands_name_locations_and_evses_whatever_the_casing(hub, sim):
    """C1: START_SESSION and UNLOCK_CONNECTOR for loc1 / loc1-e1 address LOC1 / LOC1-E1 (`loc1` was an
    unknown location, 2003) and reach the gateway with the ids as stored, so the gateway and the pending
    command match them exactly."""
    cpo = await seed_cpo(hub.db)
    await seed_location(hub.db, cpo, "LOC1")
    await connect(hub, sim)
    gw = install_fake_gateway(hub)
    await sim.push_token(sim.make_token("card-2"))
    ref, response = await sim.start_session("loc1", "loc1-e1", "1", "card-2")
    assert response["result"] == "ACCEPTED", response
    await sim.wait_for(lambda: ref in sim.command_results)
    name, kwargs = gw.calls[-1]
    assert name == "start_session" and (kwargs["location_id"], kwargs["evse_uid"]) == ("LOC1", "LOC1-E1")
    ref, response = await sim.command(
        "UNLOCK_CONNECTOR", {"location_id": "Loc1", "evse_uid": "LOC1-e1", "connector_id": "1"}
    )
    assert response["result"] == "ACCEPTED", response
    await sim.wait_for(lambda: ref in sim.command_results)
    name, kwargs = gw.calls[-1]
    assert name == "unlock_connector" and (kwargs["location_id"], kwargs["evse_uid"]) == ("LOC1", "LOC1-E1")
