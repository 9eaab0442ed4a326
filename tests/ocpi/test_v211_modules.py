"""The hub's OCPI 2.1.1 module routes (issue 13 item 4) used by a 2.1.1 eMSP simulator: every Sender GET in
2.1.1 shape (checked against the 2.1.1 field tables, tests/ocpi/_shapes.py) with pagination; the tokens
Receiver in 2.1.1 form, then a charger's Authorize under that uid; START_SESSION / STOP_SESSION in 2.1.1; and
isolation: a 2.1.1 partner sees exactly what a 2.2.1 partner of the same party and agreements sees."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cpo_gateway.authorization import Authorizer
from kernel.models import Cdr, ChargingSession, Location, TariffVersion, Token
from ocpi import credentials
from simulators.emsp import EmspSimulator
from tests.conftest import FIXTURES
from tests.ocpi._helpers import connect, install_fake_gateway, seed_site, token_pk
from tests.ocpi._network import InProcessNetwork
from tests.ocpi._shapes import check, check_response
from tests.ocpi.conftest import _simulator
from tests.world.sessions import seed_session
from tests.world.sites import T0, seed_charge_point, seed_cpo, seed_location


@pytest.fixture
async def sim211(network: InProcessNetwork | None) -> AsyncIterator[EmspSimulator]:
    async for s in _simulator(
        network, "emsp-211.test", country_code="DE", party_id="OLD", name="Old eMSP", version="2.1.1"
    ):
        yield s


@pytest.fixture
async def sim221_old(network: InProcessNetwork | None) -> AsyncIterator[EmspSimulator]:
    """The same party as ``sim211`` (DE*OLD), speaking 2.2.1."""
    async for s in _simulator(
        network, "emsp-old-221.test", country_code="DE", party_id="OLD", name="Old eMSP 2.2.1"
    ):
        yield s


async def _get(sim: EmspSimulator, url: str, params: dict | None = None):
    async with sim.http() as http:
        return await http.get(url, headers={"Authorization": f"Token {sim.hub_token}"}, params=params)


async def _tariff(db, cpo: int, tariff_id: str, version: int, price: str) -> None:
    async with db.session() as s:
        s.add(
            TariffVersion(
                cpo_id=cpo,
                tariff_id=tariff_id,
                version=version,
                currency="EUR",
                source="import",
                data={
                    "id": tariff_id,
                    "currency": "EUR",
                    "elements": [
                        {"price_components": [{"type": "ENERGY", "price": Decimal(price), "step_size": 1}]}
                    ],
                    "last_updated": "2026-03-01T08:00:00Z",
                },
                last_updated=T0 + timedelta(minutes=version),
            )
        )


CDR_EXAMPLE = FIXTURES / "ocpi-221-fields" / "examples" / "cdr_example.json"  # official 2.2.1 example


async def _official_cdr(db, session_pk: int, cpo: int, emsp: int | None, cdr_uid: str) -> None:
    """A CDR of the session whose OCPI body is the spec's 2.2.1 CDR example (a complete CDR), id ``cdr_uid``."""
    example = json.loads(CDR_EXAMPLE.read_text(encoding="utf-8"))
    async with db.session() as s:
        cs = await s.get(ChargingSession, session_pk)
        assert cs is not None
        s.add(
            Cdr(
                cdr_uid=cdr_uid,
                session_id=session_pk,
                cpo_id=cpo,
                emsp_id=emsp,
                location_id=cs.location_id,
                token_id=cs.token_id,
                currency="EUR",
                start_date_time=T0,
                end_date_time=T0 + timedelta(hours=2),
                total_energy_kwh=Decimal("15.342"),
                total_time_hours=Decimal("1.973"),
                total_cost_excl_vat=Decimal("4.00"),
                total_cost_incl_vat=Decimal("4.40"),
                data={**example, "id": cdr_uid},
                last_updated=T0 + timedelta(hours=2),
            )
        )


async def _unpublish(db, location_pk: int, uid: str) -> None:
    async with db.session() as s:
        loc = await s.get(Location, location_pk)
        assert loc is not None
        loc.publish = False
        loc.data = {**(loc.data or {}), "publish_allowed_to": [{"uid": uid}]}


async def test_every_sender_module_in_211_shape_with_pagination(hub, sim211):
    cpo = await seed_cpo(hub.db)
    for i in range(3):
        await seed_location(hub.db, cpo, f"L{i}", evses=2, updated=T0 + timedelta(minutes=i))
    l9 = await seed_location(hub.db, cpo, "L9", updated=T0 + timedelta(minutes=9))
    cp = await seed_charge_point(hub.db, cpo, l9)
    await _tariff(hub.db, cpo, "T1", 1, "0.25")
    await _tariff(hub.db, cpo, "T1", 2, "0.31")
    await connect(hub, sim211)
    assert (await sim211.push_token(sim211.make_token("OLD-1"))).status_code == 200
    token = await token_pk(hub.db, "OLD-1")
    sess = await seed_session(hub.db, cpo, cp, l9, token, "SESS-1")
    await _official_cdr(hub.db, sess, cpo, token.emsp_id, "CDR-1")

    url = sim211._hub_url("locations")
    assert url == f"{hub.url}/ocpi/cpo/2.1.1/locations"
    r = await _get(sim211, url, {"limit": 2})
    assert r.status_code == 200 and check_response(r.json(), "Location", "2.1.1", many=True) == []
    assert r.headers["X-Total-Count"] == "4" and r.headers["X-Limit"] == "2"
    assert [x["id"] for x in r.json()["data"]] == ["L0", "L1"]
    assert "offset=2" in r.links["next"]["url"] and "/ocpi/cpo/2.1.1/locations" in r.links["next"]["url"]
    locations = await sim211.fetch_all("locations")
    assert [x["id"] for x in locations] == ["L0", "L1", "L2", "L9"]
    assert locations[0]["type"] == "ON_STREET" and "parking_type" not in locations[0]
    assert "country_code" not in locations[0]  # 2.1.1 Location: no country_code/party_id

    r = await _get(sim211, f"{url}/l1")  # CiString ids, as in 2.2.1
    assert check_response(r.json(), "Location", "2.1.1") == [] and r.json()["data"]["id"] == "L1"
    r = await _get(sim211, f"{url}/L1/L1-E2")
    assert check_response(r.json(), "EVSE", "2.1.1") == [] and r.json()["data"]["uid"] == "L1-E2"
    r = await _get(sim211, f"{url}/L1/L1-E2/1")
    connector = r.json()["data"]
    assert check_response(r.json(), "Connector", "2.1.1") == []
    assert (connector["voltage"], connector["amperage"]) == (230, 32)
    for missing, code in ((f"{url}/NOPE", 2003), (f"{url}/L1/NOPE", 2000), (f"{url}/L1/L1-E2/9", 2000)):
        r = await _get(sim211, missing)
        assert r.status_code == 404 and r.json()["status_code"] == code

    r = await _get(sim211, sim211._hub_url("sessions"))
    assert check_response(r.json(), "Session", "2.1.1", many=True) == []
    [session] = r.json()["data"]
    assert session["id"] == "SESS-1" and session["location"]["id"] == "L9"
    assert [e["uid"] for e in session["location"]["evses"]] == ["L9-E1"]  # only the session's EVSE
    assert session["auth_id"] == token.contract_id and r.headers["X-Total-Count"] == "1"

    r = await _get(sim211, sim211._hub_url("cdrs"))
    assert check_response(r.json(), "CDR", "2.1.1", many=True) == []
    [cdr] = r.json()["data"]
    assert cdr["id"] == "CDR-1" and Decimal(str(cdr["total_cost"])) == Decimal("4.00")  # excl. VAT

    r = await _get(sim211, sim211._hub_url("tariffs"))
    assert check_response(r.json(), "Tariff", "2.1.1", many=True) == []
    [tariff] = r.json()["data"]  # the current version only
    assert tariff["id"] == "T1"
    assert Decimal(str(tariff["elements"][0]["price_components"][0]["price"])) == Decimal("0.31")


async def test_the_same_cdr_carries_the_same_money_in_both_versions(hub, sim, sim211):
    """The same CDR (the spec's 2.2.1 example) at a 2.2.1 and a 2.1.1 partner: 2.1.1 total_cost is the 2.2.1
    total_cost.excl_vat, and the totals of energy and time are the same numbers."""
    cpo, loc, cp = await seed_site(hub.db)
    await connect(hub, sim)
    await connect(hub, sim211)
    await sim.push_token(sim.make_token("NEW-1"))
    await sim211.push_token(sim211.make_token("OLD-1"))
    for uid, sess_uid, cdr_uid in (("NEW-1", "S-NEW", "CDR-NEW"), ("OLD-1", "S-OLD", "CDR-OLD")):
        token = await token_pk(hub.db, uid)
        sess = await seed_session(hub.db, cpo, cp, loc, token, sess_uid, tx=sess_uid)
        await _official_cdr(hub.db, sess, cpo, token.emsp_id, cdr_uid)
    [new] = await sim.fetch_all("cdrs")
    [old] = await sim211.fetch_all("cdrs")
    assert Decimal(str(old["total_cost"])) == Decimal(str(new["total_cost"]["excl_vat"]))
    for key in ("total_energy", "total_time"):
        assert Decimal(str(old[key])) == Decimal(str(new[key]))


async def test_tokens_receiver_in_211_form_then_a_charger_authorizes_the_uid(hub, sim211):
    cpo = await seed_cpo(hub.db)
    cp = await seed_charge_point(hub.db, cpo, await seed_location(hub.db, cpo, "LOC1"))
    await connect(hub, sim211)
    token = {**sim211.make_token("old-card-1"), "visual_number": "DF000-2001-8999"}
    token["last_updated"] = "2026-03-01T10:00:00Z"
    r = await sim211.push_token(token)
    assert r.status_code == 200 and r.json()["status_code"] == 1000, r.text
    stored = await token_pk(hub.db, "old-card-1")
    assert (stored.country_code, stored.party_id, stored.contract_id) == ("DE", "OLD", token["auth_id"])
    assert stored.emsp_id is not None

    auth = await Authorizer(hub.db).authorize("OLD-CARD-1", charge_point_id=cp)
    assert auth.accepted and auth.token_id == stored.id

    url = f"{sim211._hub_url('tokens')}/DE/OLD/old-card-1"
    headers = {"Authorization": f"Token {sim211.hub_token}"}
    async with sim211.http() as http:
        r = await http.get(url, headers=headers)
        assert check_response(r.json(), "Token", "2.1.1") == []
        assert r.json()["data"]["auth_id"] == token["auth_id"]
        # a 2.1.1 PATCH needs no last_updated (stamped on receipt)
        r = await http.patch(url, json={"valid": False}, headers=headers)
        assert r.json()["status_code"] == 1000, r.text
        r = await http.get(url, headers=headers)
        assert r.json()["data"]["valid"] is False and r.json()["data"]["visual_number"] == "DF000-2001-8999"
        # an older PUT is answered success and not applied, as in 2.2.1
        r = await http.put(url, json={**token, "valid": True}, headers=headers)
        assert r.json()["status_code"] == 1000
        # errors in OCPI terms
        r = await http.put(url, json={**token, "uid": "OTHER"}, headers=headers)
        assert r.status_code == 400 and r.json()["status_code"] == 2001
        r = await http.put(url, json={**token, "whitelist": "SOMETIMES"}, headers=headers)
        assert r.status_code == 400 and r.json()["status_code"] == 2001
        r = await http.put(
            f"{sim211._hub_url('tokens')}/FR/OTH/1", json={**token, "uid": "1"}, headers=headers
        )
        assert r.status_code == 404
        r = await http.patch(
            f"{sim211._hub_url('tokens')}/DE/OLD/NOPE", json={"valid": True}, headers=headers
        )
        assert r.status_code == 404 and r.json()["status_code"] == 2004
    assert (await token_pk(hub.db, "old-card-1")).valid is False
    auth = await Authorizer(hub.db).authorize("old-card-1", charge_point_id=cp)
    assert not auth.accepted
    async with hub.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Token)) == 1


async def test_211_commands_through_the_command_runner(hub, sim211):
    cpo, loc, cp = await seed_site(hub.db)
    await connect(hub, sim211)
    gw = install_fake_gateway(hub)
    await sim211.push_token(sim211.make_token("OLD-1"))
    ref, response = await sim211.start_session("loc1", "LOC1-E1", None, "OLD-1")
    assert response == {"result": "ACCEPTED"}  # the 2.1.1 CommandResponse: no timeout, no message
    assert check(response, "CommandResponse", "2.1.1") == []
    await sim211.wait_for(lambda: ref in sim211.command_results)
    assert sim211.command_results[ref]["result"] == "ACCEPTED"
    name, kwargs = gw.calls[0]
    assert name == "start_session" and kwargs["cpo_id"] == cpo
    assert (kwargs["location_id"], kwargs["evse_uid"], kwargs["id_tag"]) == ("LOC1", "LOC1-E1", "OLD-1")
    assert kwargs["token"]["country_code"] == "DE" and kwargs["token"]["contract_id"]

    _, response = await sim211.stop_session("NOPE")
    assert response == {"result": "UNKNOWN_SESSION"}
    token = await token_pk(hub.db, "OLD-1")
    await seed_session(hub.db, cpo, cp, loc, token, "SESS-9")
    ref, response = await sim211.stop_session("sess-9")
    assert response == {"result": "ACCEPTED"}
    await sim211.wait_for(lambda: ref in sim211.command_results)
    assert gw.calls[-1] == ("stop_session", {"cpo_id": cpo, "session_uid": "SESS-9"})

    # RESERVE_NOW (2.1.1 reservation_id is an int) and UNLOCK_CONNECTOR at a location of a second CPO: the
    # command goes to that CPO (2.1.1 has no routing headers)
    cpo2 = await seed_cpo(hub.db, "BE", "CP2", "Two")
    await seed_location(hub.db, cpo2, "LOC2")
    reserve = {
        "token": sim211.make_token("OLD-1"),
        "expiry_date": "2030-01-01T00:00:00Z",
        "reservation_id": 7,
        "location_id": "LOC2",
        "evse_uid": "LOC2-E1",
    }
    ref, response = await sim211.command("RESERVE_NOW", reserve)
    assert response == {"result": "ACCEPTED"}
    await sim211.wait_for(lambda: ref in sim211.command_results)
    ref, response = await sim211.command(
        "UNLOCK_CONNECTOR", {"location_id": "LOC2", "evse_uid": "LOC2-E1", "connector_id": "1"}
    )
    assert response == {"result": "ACCEPTED"}
    await sim211.wait_for(lambda: ref in sim211.command_results)
    assert [(name, kw["cpo_id"]) for name, kw in gw.calls[2:]] == [
        ("reserve_now", cpo2),
        ("unlock_connector", cpo2),
    ]

    url = sim211._hub_url("commands")
    headers = {"Authorization": f"Token {sim211.hub_token}"}
    async with sim211.http() as http:
        body = {"response_url": f"{sim211.url}/x", "reservation_id": "1"}
        r = await http.post(f"{url}/CANCEL_RESERVATION", json=body, headers=headers)  # not in 2.1.1
        assert r.status_code == 400 and r.json()["status_code"] == 2001
        body = {"response_url": f"{sim211.url}/x", "token": sim211.make_token("OLD-1"), "location_id": "NOPE"}
        r = await http.post(f"{url}/START_SESSION", json=body, headers=headers)
        assert r.status_code == 404 and r.json()["status_code"] == 2003
        r = await http.post(f"{url}/STOP_SESSION", json={"session_id": "x"}, headers=headers)
        assert r.status_code == 400 and r.json()["status_code"] == 2001
    assert len(gw.calls) == 4


async def test_a_211_partner_sees_what_a_221_partner_of_the_same_party_sees(hub, sim211, sim221_old, sim2):
    """Two CPOs it has agreements with and one it has not; an unpublished location shown to its token only,
    one shown to another eMSP's token only; sessions and CDRs of its tokens and of another eMSP's."""
    cpo1 = await seed_cpo(hub.db, "NL", "CPO", "One")
    cpo2 = await seed_cpo(hub.db, "BE", "CP2", "Two")
    cpo3 = await seed_cpo(hub.db, "FR", "CP3", "Three")
    l1 = await seed_location(hub.db, cpo1, "L1")
    mine = await seed_location(hub.db, cpo1, "H-MINE")
    theirs = await seed_location(hub.db, cpo1, "H-THEIRS")
    l2 = await seed_location(hub.db, cpo2, "L2")
    await seed_location(hub.db, cpo3, "L3")
    for cpo, tariff in ((cpo1, "T1"), (cpo2, "T2"), (cpo3, "T3")):
        await _tariff(hub.db, cpo, tariff, 1, "0.30")
    cp1 = await seed_charge_point(hub.db, cpo1, l1, "CP1")
    cp2 = await seed_charge_point(hub.db, cpo2, l2, "CP2")
    await connect(hub, sim2, allowed_cpo_ids=[cpo1, cpo2, cpo3])
    await sim2.push_token(sim2.make_token("OTHER-1"))
    await _unpublish(hub.db, mine, "OLD-1")
    await _unpublish(hub.db, theirs, "OTHER-1")
    other = await token_pk(hub.db, "OTHER-1")

    partner = await connect(hub, sim211, allowed_cpo_ids=[cpo1, cpo2])
    await sim211.push_token(sim211.make_token("OLD-1"))
    token = await token_pk(hub.db, "OLD-1")
    for n, (cpo, cp, loc, tok) in enumerate(
        ((cpo1, cp1, l1, token), (cpo2, cp2, l2, token), (cpo1, cp1, l1, other)), start=1
    ):
        sess = await seed_session(hub.db, cpo, cp, loc, tok, f"S{n}", tx=str(n))
        await _official_cdr(hub.db, sess, cpo, tok.emsp_id, f"C{n}")

    def ids(items: list[dict]) -> list[str]:
        return sorted(x["id"] for x in items)

    seen_211 = {m: ids(await sim211.fetch_all(m)) for m in ("locations", "sessions", "cdrs", "tariffs")}
    assert seen_211 == {
        "locations": ["H-MINE", "L1", "L2"],
        "sessions": ["S1", "S2"],
        "cdrs": ["C1", "C2"],
        "tariffs": ["T1", "T2"],
    }
    for hidden in ("H-THEIRS", "L3"):
        r = await _get(sim211, f"{sim211._hub_url('locations')}/{hidden}")
        assert r.status_code == 404 and r.json()["status_code"] == 2003

    # the same party, same agreements, now in 2.2.1: the union over its CPOs is the same
    await credentials.unregister(hub.db, partner, notify=False)
    await connect(hub, sim221_old, allowed_cpo_ids=[cpo1, cpo2])
    seen_221 = {
        m: ids([x for to in (("NL", "CPO"), ("BE", "CP2")) for x in await sim221_old.fetch_all(m, to=to)])
        for m in ("locations", "sessions", "cdrs", "tariffs")
    }
    assert seen_221 == seen_211
