"""Issue 13, the isolation breaches tried with two eMSPs (DE*EMS, the owner; FR*OTH, the intruder), two CPOs and
the hub's hosted fleet eMSP (NL*EVH): each breach the issue names is tried through the real handshake and the
real HTTP surface and refused. What other files already assert is not repeated here: the roles a partner may
register and the quote of another CPO's location (tests/ocpi/test_issue13_isolation.py, S1/S2), every casing of
an identifier of one's own (test_issue13_cistring.py), the ownership rule's details (test_issue13_collisions.py).

* B1 uid capture and block bypass, end to end: a real OCPP 1.6 charger over a socket, the intruder's push
  and START_SESSION of the owner's card, the owner's block under every casing, the session and CDR of the
  card going to the owner only.
* B2 the hosted eMSP's fleet card claimed by a partner (its uid pushed; a START_SESSION with it).
* B3 another eMSP's sessions, CDRs and tokens under every casing (also with the intruder holding a row of the
  owner's uid stored before the rule), and speaking as the other eMSP with lower-cased routing headers.
* B4 two CPOs: an eMSP limited to one CPO names the other's location under another casing.
* B5 a response_url elsewhere on the commands S3 does not try (STOP_SESSION, CANCEL_RESERVATION).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cpo_gateway.authorization import Authorizer
from evhub.app import RunningHub as Evhub
from kernel.db.engine import Database
from kernel.models import Party, Token
from kernel.models.roaming import OcpiPendingCommand
from kernel.timeutil import utcnow
from ocpi.partners import invite_partner
from simulators.chargepoints import ChargerFleet
from simulators.emsp import EmspSimulator
from tests.ocpi._helpers import (
    connect,
    hosted_fleet_card,
    install_fake_gateway,
    seed_site,
    token_pk,
)
from tests.ocpi.conftest import RunningHub
from tests.world.cdrs import seed_cdr
from tests.world.roaming import roaming_world
from tests.world.sessions import seed_session
from tests.world.sites import seed_charge_point, seed_cpo, seed_location

CASINGS = ("card-b", "CARD-B", "Card-B")


def _auth(sim: EmspSimulator, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Token {sim.hub_token}", **sim.routing(), **headers}


async def _refused_push(sim: EmspSimulator, uid: str) -> None:
    r = await sim.push_token(sim.make_token(uid))
    assert (r.status_code, r.json()["status_code"]) == (400, 2001), r.text


# ---- B1: uid capture and block bypass, a real 1.6 charger


@pytest.fixture
async def world(db: Database) -> AsyncIterator[tuple[Evhub, EmspSimulator, EmspSimulator, ChargerFleet]]:
    """The roaming world (hub, the owner DE*EMS, charger AMS-CP-1 on AMS-01-1) and the intruder FR*OTH,
    registered through the real handshake."""
    async with roaming_world(db, name="owner eMSP", password="breach-password") as (hub, owner, fleet):
        intruder = EmspSimulator(country_code="FR", party_id="OTH", name="intruder eMSP")
        await intruder.start(0)
        try:
            invitation = await invite_partner(
                hub.db, hub.settings.public_url, intruder.name, roles=[("FR", "OTH", "EMSP")]
            )
            await intruder.register(invitation.versions_url, invitation.token_a)
            yield hub, owner, intruder, fleet
        finally:
            await intruder.stop()


def _start(sim: EmspSimulator, uid: str) -> dict[str, Any]:
    token = sim.tokens.get((uid, "RFID")) or sim.make_token(uid)
    return {"token": token, "location_id": "AMS-CENTRAAL", "evse_uid": "AMS-01-1", "connector_id": "1"}


async def test_b1_an_intruder_neither_captures_a_card_nor_gets_past_its_block(
    world: Any, db: Database
) -> None:
    """B1: the owner's card CARD-B is blocked. The intruder's PUT of card-b / Card-B is refused (2001) and its
    START_SESSION with its own token object for the uid is REJECTED (the charger never starts); the charger's
    Authorize under every casing is Blocked, for the owner's token. Unblocked by the owner, the card charges:
    the session and its CDR go to the owner, and the intruder receives and can fetch neither."""
    hub, owner, intruder, fleet = world
    assert (await owner.push_token(owner.make_token("CARD-B", valid=False))).json()["status_code"] == 1000
    for uid in ("card-b", "Card-B"):
        await _refused_push(intruder, uid)
    _ref, answer = await intruder.command("START_SESSION", _start(intruder, "card-b"))
    assert answer["result"] == "REJECTED", answer
    owner_token = await token_pk(db, "CARD-B")
    authorizer = Authorizer(db, hub.hub.services)
    for tag in CASINGS:
        decision = await authorizer.authorize(tag, charge_point_id=1)
        assert (decision.status, decision.token_id) == ("Blocked", owner_token.id), (tag, decision)

    assert (await owner.push_token(owner.make_token("CARD-B"))).json()["status_code"] == 1000
    ref, answer = await owner.command("START_SESSION", _start(owner, "CARD-B"))
    assert answer["result"] == "ACCEPTED", answer
    await owner.wait_for(lambda: ref in owner.command_results, timeout=20)
    await owner.wait_for(
        lambda: any(s.get("status") == "ACTIVE" for s in owner.sessions.values()), timeout=30
    )
    session_id = next(iter(owner.sessions))
    assert owner.sessions[session_id]["cdr_token"]["party_id"] == "EMS"
    _ref, stop = await owner.stop_session(session_id)
    assert stop["result"] == "ACCEPTED"
    await owner.wait_for(lambda: fleet.chargers[0].stats.sessions_completed == 1, timeout=30)
    pricing = hub.hub.services.pricing
    assert pricing is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not owner.cdrs:
        assert loop.time() < deadline, "no CDR reached the owner"
        await pricing.run_once()
        await asyncio.sleep(0.2)
    assert owner.cdrs[0]["cdr_token"]["uid"] == "CARD-B"
    assert intruder.sessions == {} and intruder.cdrs == []
    assert await intruder.fetch_all("sessions") == [] and await intruder.fetch_all("cdrs") == []
    assert fleet.chargers[0].stats.sessions_completed == 1  # the intruder's START_SESSION never started one


# ---- B2: the hosted eMSP's fleet card


async def test_b2_a_partner_cannot_claim_the_hosted_fleets_card(hub: RunningHub, sim: EmspSimulator) -> None:
    """B2: a partner pushing the uid of the hosted fleet's blocked card (fleet-b) is refused (2001), its
    START_SESSION with it is REJECTED and nothing reaches the charger; at the charger the card stays the fleet's
    and Blocked under every casing (the partner's valid copy answered Accepted)."""
    _cpo, _loc, cp = await seed_site(hub.db)
    card = await hosted_fleet_card(hub.db, "FLEET-B", valid=False)
    await connect(hub, sim)
    gw = install_fake_gateway(hub)
    await _refused_push(sim, "fleet-b")
    _ref, answer = await sim.start_session("LOC1", "LOC1-E1", "1", "fleet-b")
    assert answer["result"] == "REJECTED", answer
    await hub.dispatched()
    assert gw.calls == []
    for tag in ("fleet-b", "FLEET-B", "Fleet-B"):
        decision = await Authorizer(hub.db).authorize(tag, charge_point_id=cp)
        assert (decision.status, decision.token_id) == ("Blocked", card), (tag, decision)
    async with hub.db.session() as s:
        assert [t.party_id for t in (await s.scalars(select(Token))).all()] == ["EVH"]


# ---- B3: another eMSP's sessions, CDRs and tokens


async def test_b3_another_emsps_objects_stay_hidden_under_every_casing(
    hub: RunningHub, sim: EmspSimulator, sim2: EmspSimulator
) -> None:
    """B3: the owner's session and CDR of CARD-B, and the intruder holding a row of card-b stored before the
    ownership rule. The intruder lists neither; GET of the session / CDR / the owner's token under every
    casing is 404; STOP_SESSION (upper-cased id) is UNKNOWN_SESSION and its ChargingProfile GET is
    UNKNOWN_SESSION, nothing reaching the charger; speaking as the owner with lower-cased routing headers is
    refused (2001)."""
    cpo, loc, cp = await seed_site(hub.db)
    await connect(hub, sim)
    await connect(hub, sim2)
    gw = install_fake_gateway(hub)
    assert (await sim.push_token(sim.make_token("CARD-B"))).json()["status_code"] == 1000
    owner_token = await token_pk(hub.db, "CARD-B")
    async with hub.db.session() as s:  # the intruder's row, as stored before the rule
        intruder = await s.scalar(select(Party).where(Party.party_id == "OTH"))
        assert intruder is not None
        s.add(
            Token(
                country_code="FR", party_id="OTH", uid="card-b", contract_id="FR-OTH-X", issuer="x",
                emsp_id=intruder.id, valid=True, last_updated=utcnow() - timedelta(minutes=1),
            )
        )  # fmt: skip
    session_uid = "5e1f0c2a-b3b3-4c4c-9d9d-000000000b03"
    session_pk = await seed_session(hub.db, cpo, cp, loc, owner_token, session_uid)
    await seed_cdr(hub.db, session_pk, cpo, owner_token.emsp_id, "cdr-b3")

    assert [x["id"] for x in await sim.fetch_all("sessions")] == [session_uid]
    assert await sim2.fetch_all("sessions") == [] and await sim2.fetch_all("cdrs") == []
    async with sim2.http() as http:
        for sid in (session_uid, session_uid.upper()):
            r = await http.get(f"{sim2._hub_url('sessions')}/{sid}", headers=_auth(sim2))
            assert r.status_code == 404, r.text
        for cid in ("cdr-b3", "CDR-B3"):
            r = await http.get(f"{sim2._hub_url('cdrs')}/{cid}", headers=_auth(sim2))
            assert r.status_code == 404, r.text
        for path in ("DE/EMS/CARD-B", "de/ems/card-b", "De/Ems/Card-B"):
            r = await http.get(f"{sim2._hub_url('tokens')}/{path}", headers=_auth(sim2))
            assert r.status_code == 404, (path, r.text)
        as_owner = {"OCPI-from-country-code": "de", "OCPI-from-party-id": "ems"}
        r = await http.get(sim2._hub_url("sessions"), headers=_auth(sim2, **as_owner))
        assert (r.status_code, r.json()["status_code"]) == (400, 2001), r.text
        url, _ref = sim2.profile_response_url()
        r = await http.get(
            f"{sim2._hub_url('chargingprofiles')}/{session_uid.upper()}",
            params={"duration": 60, "response_url": url},
            headers=_auth(sim2),
        )
        assert r.json()["data"]["result"] == "UNKNOWN_SESSION", r.text
    _ref, answer = await sim2.stop_session(session_uid.upper())
    assert answer["result"] == "UNKNOWN_SESSION", answer
    await hub.dispatched()
    assert gw.calls == []


# ---- B4: two CPOs


async def test_b4_an_emsp_limited_to_one_cpo_cannot_name_the_others_location(
    hub: RunningHub, sim: EmspSimulator
) -> None:
    """B4: two hosted CPOs, the eMSP's agreement with NL*CPO only. Addressing BE*CP2 (lower-cased routing
    headers too) answers 4001; naming BE*CP2's location (any casing) through NL*CPO in a command or a GET is
    an unknown location (2003): it is not disclosed and nothing reaches the charger."""
    cpo1 = await seed_cpo(hub.db, "NL", "CPO")
    cpo2 = await seed_cpo(hub.db, "BE", "CP2", "Other CPO")
    await seed_location(hub.db, cpo1, "L1")
    loc2 = await seed_location(hub.db, cpo2, "L2")
    await seed_charge_point(hub.db, cpo2, loc2, "CP-2")
    await connect(hub, sim, allowed_cpo_ids=[cpo1])
    gw = install_fake_gateway(hub)
    await sim.push_token(sim.make_token("CARD-B4"), to=("NL", "CPO"))
    async with sim.http() as http:
        for cc, pid in (("BE", "CP2"), ("be", "cp2")):
            headers = _auth(sim, **{"OCPI-to-country-code": cc, "OCPI-to-party-id": pid})
            r = await http.get(f"{sim._hub_url('locations')}/L2", headers=headers)
            assert (r.status_code, r.json()["status_code"]) == (404, 4001), r.text
        for location_id in ("L2", "l2"):
            r = await http.get(
                f"{sim._hub_url('locations')}/{location_id}", headers=_auth(sim, **_to("NL", "CPO"))
            )
            assert (r.status_code, r.json()["status_code"]) == (404, 2003), r.text
            body = {**_start_at(sim, location_id), "response_url": f"{sim.base_url}/x"}
            r = await http.post(
                f"{sim._hub_url('commands')}/START_SESSION", json=body, headers=_auth(sim, **_to("NL", "CPO"))
            )
            assert (r.status_code, r.json()["status_code"]) == (404, 2003), r.text
    await hub.dispatched()
    assert gw.calls == []


def _to(cc: str, pid: str) -> dict[str, str]:
    return {"OCPI-to-country-code": cc, "OCPI-to-party-id": pid}


def _start_at(sim: EmspSimulator, location_id: str) -> dict[str, Any]:
    return {
        "token": sim.make_token("CARD-B4"),
        "location_id": location_id,
        "evse_uid": f"{location_id}-E1",
        "connector_id": "1",
    }


# ---- B5: response_url elsewhere


async def test_b5_stop_and_cancel_with_a_response_url_elsewhere_are_refused(
    hub: RunningHub, sim: EmspSimulator, db: Database
) -> None:
    """B5 (S3 tries START_SESSION, UNLOCK_CONNECTOR, RESERVE_NOW and ChargingProfiles): STOP_SESSION of the
    eMSP's own running session and CANCEL_RESERVATION with a response_url off its registered hosts answer 2001
    (HTTP 400); no pending command and no call to the charger."""
    cpo, loc, cp = await seed_site(hub.db)
    await connect(hub, sim)
    gw = install_fake_gateway(hub)
    assert (await sim.push_token(sim.make_token("CARD-B5"))).json()["status_code"] == 1000
    await seed_session(hub.db, cpo, cp, loc, await token_pk(hub.db, "CARD-B5"), "SESS-B5")
    bodies = {"STOP_SESSION": {"session_id": "SESS-B5"}, "CANCEL_RESERVATION": {"reservation_id": "RES-B5"}}
    async with sim.http() as http:
        for command, body in bodies.items():
            for bad in ("http://169.254.169.254/latest/meta-data/", "http://evil.test/x", "not a url"):
                r = await http.post(
                    f"{sim._hub_url('commands')}/{command}",
                    json={**body, "response_url": bad},
                    headers=_auth(sim),
                )
                assert (r.status_code, r.json()["status_code"]) == (400, 2001), (command, bad, r.text)
    async with db.session() as s:
        assert (await s.scalars(select(OcpiPendingCommand))).all() == []
    assert gw.calls == []
