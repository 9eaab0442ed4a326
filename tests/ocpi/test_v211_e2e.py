"""OCPI 2.1.1 end to end (issue 13, item 4): a 2.1.1 and a 2.2.1 eMSP simulator registered on one hub through
the real handshake, each with its own token, charging at one location through the gateway's session store.

What must hold: each partner receives its sessions (PUT, then PATCHes) and CDRs in its own version; the 2.1.1
CDR carries the same money as the 2.2.1 CDR of the same session (2.1.1 ``total_cost`` is the 2.2.1
``total_cost.excl_vat``; energy and times equal), and as the 2.2.1 partner's CDR of an identical session;
commands from the 2.1.1 eMSP round trip with their result at its 2.1.1 ``response_url``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from cpo_gateway.authorization import Authorizer
from cpo_gateway.events import ChargerRef, SessionEnded, SessionStarted
from cpo_gateway.session_store import SessionStore
from kernel import jsonutil
from kernel.models import Cdr, ChargingSession, MeterValue
from kernel.models.roaming import OcpiPartner
from ocpi.push.session_push import enqueue_session_update
from ocpi.render_objects import cdr_object
from simulators.emsp import EmspSimulator
from tariffs.rating import rate_pending
from tests.ocpi._helpers import FakeGateway, connect, token_pk
from tests.ocpi._network import InProcessNetwork
from tests.ocpi._pushes import seed_priced_charger
from tests.ocpi._shapes import assert_exact
from tests.world.sites import T0, seed_charge_point, seed_cpo, seed_location

ROUTING = {"ocpi-from-country-code", "ocpi-from-party-id", "ocpi-to-country-code", "ocpi-to-party-id"}


@pytest.fixture
async def sim211(network: InProcessNetwork | None) -> AsyncIterator[EmspSimulator]:
    """A 2.1.1 eMSP (FR*OLD) on the tests' network."""
    sim = EmspSimulator(
        country_code="FR",
        party_id="OLD",
        name="2.1.1 eMSP",
        version="2.1.1",
        hub_timeout=30,
        transport=network,
    )
    if network is None:
        await sim.start()
    else:
        sim.url = network.serve("emsp-211.test", sim.app)
    try:
        yield sim
    finally:
        await sim.stop()


ENERGY_AND_TIME = [
    {
        "price_components": [
            {"type": "ENERGY", "price": 0.30, "vat": 21.0, "step_size": 1},
            {"type": "TIME", "price": 1.20, "vat": 21.0, "step_size": 60},
        ]
    }
]
"""The DEFAULT tariff of the charger: 0.30 per kWh and 1.20 per hour, 21 % VAT."""


def _num(obj: Any) -> Any:
    """JSON numbers as Decimal (exact comparison of money), via a JSON round trip."""
    return json.loads(jsonutil.dumps(obj), parse_float=Decimal)


async def _charge(hub, store: SessionStore, charger: ChargerRef, uid: str, tx_evse: int) -> int:  # type: ignore[no-untyped-def]
    """A session of token ``uid`` on EVSE ``tx_evse``: 1 kWh at the start, readings at 15 and 30 minutes,
    11 kWh in all after an hour. Returns the session's pk."""
    auth = await Authorizer(hub.db, hub.services).authorize(uid, "RFID", charge_point_id=charger.id)
    assert auth.accepted, auth
    started = SessionStarted(None, tx_evse, tx_evse, uid, T0, Decimal(1000))
    tx, _opened = await store.start_v16(charger, started, auth)
    async with hub.db.session() as s:
        cs = await s.scalar(select(ChargingSession).where(ChargingSession.id_tag == uid))
        assert cs is not None
        sid = cs.id
    for minutes, wh in ((15, 4000), (30, 6500)):
        async with hub.db.session() as s:
            s.add(MeterValue(session_id=sid, timestamp=T0 + timedelta(minutes=minutes), value=Decimal(wh)))
            row = await s.get(ChargingSession, sid)
            assert row is not None
            row.energy_wh = Decimal(wh) - Decimal(1000)
            row.last_updated = T0 + timedelta(minutes=minutes)
            await enqueue_session_update(row, s)
    await store.ended(charger, SessionEnded(tx, T0 + timedelta(hours=1), Decimal(12000), "Local", uid))
    return sid


async def test_sessions_and_cdrs_at_a_211_and_a_221_partner_carry_the_same_money(hub, sim, sim211) -> None:
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    sim211.tokens[("CARD-211", "RFID")] = sim211.make_token("CARD-211")  # pulled at registration
    await connect(hub, sim)
    p211 = await connect(hub, sim211)
    async with hub.db.session() as s:
        partner = await s.get(OcpiPartner, p211)
        assert partner is not None and partner.version == "2.1.1"
    pulled = await token_pk(hub.db, "CARD-211")  # the tokens pull of the registration, 2.1.1 form
    assert (pulled.country_code, pulled.party_id, pulled.contract_id) == ("FR", "OLD", "FR-OLD-CCARD-211")
    await sim.push_token(sim.make_token("CARD-221"))
    store, charger = await seed_priced_charger(hub, cpo, loc, "CP-E2E", ENERGY_AND_TIME)
    # both see the location, each in its version
    assert await hub.component.scan_once() >= 2
    await sim.wait_for(lambda: "LOC1" in sim.locations and "LOC1" in sim211.locations)
    assert_exact(sim211.locations["LOC1"], "Location", "2.1.1")
    assert_exact(sim.locations["LOC1"], "Location", "2.2.1")
    # an identical session of each one's token
    sid211 = await _charge(hub, store, charger, "CARD-211", 1)
    sid221 = await _charge(hub, store, charger, "CARD-221", 2)
    assert await rate_pending(hub.db, hub.hooks.cdr) == 2
    await sim.wait_for(lambda: len(sim.cdrs) == 1 and len(sim211.cdrs) == 1)
    cdr211, cdr221 = _num(sim211.cdrs[0]), _num(sim.cdrs[0])
    assert_exact(sim211.cdrs[0], "CDR", "2.1.1")
    assert_exact(sim.cdrs[0], "CDR", "2.2.1")
    assert (
        cdr221["total_cost"]["excl_vat"] > 0
        and cdr221["total_cost"]["incl_vat"] > cdr221["total_cost"]["excl_vat"]
    )
    assert cdr211["total_cost"] == cdr221["total_cost"]["excl_vat"]
    for key in ("total_energy", "total_time", "total_parking_time"):
        assert cdr211.get(key) == cdr221.get(key), key
    # the 2.1.1 CDR of a session and the 2.2.1 CDR of the same session (what a 2.2.1 partner is sent)
    async with hub.db.session() as s:
        row = await s.scalar(select(Cdr).where(Cdr.session_id == sid211))
        assert row is not None
        same = _num(cdr_object(row))
    assert cdr211["total_cost"] == same["total_cost"]["excl_vat"] == Decimal(str(row.total_cost_excl_vat))
    for key in ("total_energy", "total_time", "total_parking_time"):
        assert cdr211.get(key) == same.get(key), key
    # the sessions: PUT, then PATCHes, ending COMPLETED; at 2.1.1 every PATCH with all periods so far
    async with hub.db.session() as s:
        uid211 = (await s.get(ChargingSession, sid211)).session_uid  # type: ignore[union-attr]
        uid221 = (await s.get(ChargingSession, sid221)).session_uid  # type: ignore[union-attr]
    await sim.wait_for(
        lambda: (
            sim211.sessions.get(uid211, {}).get("status") == "COMPLETED"
            and sim.sessions.get(uid221, {}).get("status") == "COMPLETED"
        )
    )
    calls = [(r.method, r.body) for r in sim211.log if "/sessions/" in r.path and uid211 in r.path]
    assert [m for m, _ in calls][:2] == ["PUT", "PATCH"] and all(m == "PATCH" for m, _ in calls[1:])
    assert_exact(calls[0][1], "Session", "2.1.1")
    for _method, body in calls[1:]:
        assert_exact(body, "Session", "2.1.1", partial=True)
    session211 = _num(sim211.sessions[uid211])
    assert session211["location"]["id"] == "LOC1" and session211["auth_id"] == "FR-OLD-CCARD-211"
    assert session211["kwh"] == _num(sim.sessions[uid221])["kwh"]
    assert len(session211["charging_periods"]) == len(sim.sessions[uid221]["charging_periods"]) >= 2
    for r in sim211.log:  # every push to the 2.1.1 partner: the raw token, no routing headers
        if r.method in ("PUT", "PATCH", "POST") and "/credentials" not in r.path:
            assert not ROUTING & {h.lower() for h in r.headers}
            assert r.headers.get("authorization", "").startswith("Token ")
            assert r.headers["authorization"] == f"Token {sim211.my_token}"


async def test_commands_from_a_211_emsp_round_trip_to_its_response_url(hub, sim211) -> None:
    cpo = await seed_cpo(hub.db)
    await seed_location(hub.db, cpo, "LOC1")
    await connect(hub, sim211)
    gateway = FakeGateway()
    hub.services.gateway = gateway
    ref, response = await sim211.start_session("LOC1", "LOC1-E1", None, "APP-211")
    assert response == {"result": "ACCEPTED"}
    await sim211.wait_for(lambda: ref in sim211.command_results)
    result = dict(sim211.command_results[ref])
    assert result.pop("command") == "START_SESSION"
    assert result == {"result": "ACCEPTED"}
    assert_exact(result, "CommandResponse", "2.1.1")
    assert [name for name, _kw in gateway.calls] == ["start_session"]
    # the charger refuses to unlock: a 2.2.1-only result is REJECTED in 2.1.1
    gateway.answer = "EVSE_OCCUPIED"
    body = {"location_id": "LOC1", "evse_uid": "LOC1-E1", "connector_id": "1"}
    ref2, response2 = await sim211.command("UNLOCK_CONNECTOR", body)
    await sim211.wait_for(lambda: ref2 in sim211.command_results)
    assert response2 == {"result": "ACCEPTED"}
    assert sim211.command_results[ref2] == {"command": "UNLOCK_CONNECTOR", "result": "REJECTED"}
    posts = [r for r in sim211.log if r.method == "POST" and "/commands/" in r.path]
    assert len(posts) == 2
    for r in posts:
        assert not ROUTING & {h.lower() for h in r.headers}
        assert r.headers["authorization"] == f"Token {sim211.my_token}"


async def test_realtime_authorization_at_the_211_emsp(hub, sim211) -> None:
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    cp = await seed_charge_point(hub.db, cpo, loc)
    await connect(hub, sim211)
    assert (await sim211.push_token(sim211.make_token("RT-211", whitelist="NEVER"))).status_code == 200
    auth = await Authorizer(hub.db, hub.services).authorize(
        "RT-211", "ISO14443", charge_point_id=cp, location_id=loc
    )
    assert auth.accepted and auth.auth_method == "AUTH_REQUEST"
    asked = [r for r in sim211.log if r.path.endswith("/authorize")]
    assert len(asked) == 1 and asked[0].query == "type=RFID"
    assert asked[0].body == {"location_id": "LOC1"}
