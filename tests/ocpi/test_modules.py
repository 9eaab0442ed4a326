"""Sender modules (pagination, filters, single objects), the tokens Receiver, bad input, party isolation."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from kernel.models import Token
from ocpi.pagination import MAX_LIMIT
from tests.conftest import OCPI_EXAMPLES
from tests.ocpi._helpers import connect, token_pk
from tests.world.cdrs import seed_cdr
from tests.world.sessions import seed_session
from tests.world.sites import T0, seed_charge_point, seed_cpo, seed_location


async def _get(
    sim, path: str, *, headers: dict | None = None, params: dict | None = None, routing: bool = True
):
    h = sim.routing() if routing else {}
    h.update(headers or {})
    async with sim.http() as http:
        return await http.get(path, headers={"Authorization": f"Token {sim.hub_token}", **h}, params=params)


async def test_locations_pagination_walked_to_the_end_with_filters(hub, sim):
    cpo = await seed_cpo(hub.db)
    for i in range(7):
        await seed_location(hub.db, cpo, f"L{i:02d}", evses=1, updated=T0 + timedelta(minutes=i))
    await seed_location(hub.db, cpo, "HIDDEN", publish=False)
    await connect(hub, sim)
    loc_url = sim._hub_url("locations")

    r = await _get(sim, loc_url, params={"limit": 3})
    assert r.status_code == 200
    assert r.headers["X-Total-Count"] == "7" and r.headers["X-Limit"] == "3"
    assert [x["id"] for x in r.json()["data"]] == ["L00", "L01", "L02"]  # oldest first
    # walk with a date filter; the filter must be kept in every Link
    date_from = (T0 + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    date_to = (T0 + timedelta(minutes=6)).isoformat().replace("+00:00", "Z")
    seen, url, params, pages = [], loc_url, {"limit": 2, "date_from": date_from, "date_to": date_to}, 0
    while url:
        r = await _get(sim, url, params=params)
        assert r.headers["X-Total-Count"] == "5"
        seen += [x["id"] for x in r.json()["data"]]
        url = r.links.get("next", {}).get("url")
        if url:
            assert "date_from=" in url and "date_to=" in url and "limit=2" in url
        params, pages = None, pages + 1
    assert seen == ["L01", "L02", "L03", "L04", "L05"] and pages == 3
    assert [x["id"] for x in await sim.fetch_all("locations")] == [f"L{i:02d}" for i in range(7)]
    # limit above the maximum is capped and said in X-Limit
    r = await _get(sim, loc_url, params={"limit": 10_000})
    assert r.headers["X-Limit"] == str(MAX_LIMIT)
    # single objects, with live EVSE status
    r = await _get(sim, f"{loc_url}/L03")
    body = r.json()["data"]
    assert body["country_code"] == "NL" and body["party_id"] == "CPO"
    assert body["evses"][0]["status"] == "AVAILABLE" and body["evses"][0]["connectors"][0]["id"] == "1"
    r = await _get(sim, f"{loc_url}/L03/L03-E1")
    assert r.json()["data"]["uid"] == "L03-E1"
    r = await _get(sim, f"{loc_url}/L03/L03-E1/1")
    assert r.json()["data"]["standard"] == "IEC_62196_T2"
    # unknown or unpublished location -> 2003 / 404
    for missing in ("NOPE", "HIDDEN"):
        r = await _get(sim, f"{loc_url}/{missing}")
        assert r.status_code == 404 and r.json()["status_code"] == 2003


async def test_bad_requests(hub, sim):
    cpo = await seed_cpo(hub.db)
    await seed_location(hub.db, cpo, "LOC1")
    await connect(hub, sim)
    loc_url = sim._hub_url("locations")
    r = await _get(sim, loc_url, routing=False)
    assert r.status_code == 400 and r.json()["status_code"] == 2001
    r = await _get(sim, loc_url, headers={"OCPI-to-party-id": "ZZZ"})
    assert r.json()["status_code"] == 4001
    r = await _get(sim, loc_url, headers={"OCPI-from-party-id": "XXX"})
    assert r.status_code == 400 and r.json()["status_code"] == 2001
    async with sim.http() as http:
        r = await http.get(loc_url, headers=sim.routing())
        assert r.status_code == 401
        r = await http.get(loc_url, headers={"Authorization": "Token bm9wZQ==", **sim.routing()})
        assert r.status_code == 401
    r = await _get(sim, loc_url, params={"offset": "x"})
    assert r.json()["status_code"] == 2001
    r = await _get(sim, loc_url, params={"date_from": "yesterday"})
    assert r.json()["status_code"] == 2001


async def test_tokens_receiver_put_patch_and_errors(hub, sim):
    await seed_cpo(hub.db)
    await connect(hub, sim)
    example = __import__("json").loads((OCPI_EXAMPLES / "token_put_example.json").read_text())
    token = {
        **sim.make_token("012345678"),
        "last_updated": "2026-03-01T10:00:00Z",  # before the PATCH below (an older PATCH is not applied)
        **{k: v for k, v in example.items() if k in ("visual_number", "language")},
    }
    r = await sim.push_token(token)
    assert r.status_code == 200 and r.json()["status_code"] == 1000, r.text
    stored = await token_pk(hub.db, "012345678")
    assert stored.contract_id == token["contract_id"] and stored.whitelist == "ALLOWED" and stored.emsp_id
    url = f"{sim._hub_url('tokens')}/DE/EMS/012345678"
    auth = {"Authorization": f"Token {sim.hub_token}", **sim.routing()}
    async with sim.http() as http:
        r = await http.patch(url, json={"valid": False, "last_updated": "2026-03-02T10:00:00Z"}, headers=auth)
        assert r.json()["status_code"] == 1000
        r = await http.get(url, headers=auth)
        assert (
            r.json()["data"]["valid"] is False and r.json()["data"]["visual_number"] == token["visual_number"]
        )
        # rejected requests change nothing
        bad = {**token, "uid": "OTHER"}
        r = await http.put(url, json=bad, headers=auth)
        assert r.status_code == 400 and r.json()["status_code"] == 2001
        r = await http.put(url, content=b'{"uid": ', headers=auth)
        assert r.status_code == 400 and r.json()["status_code"] == 2001
        r = await http.put(url, json={**token, "whitelist": "SOMETIMES"}, headers=auth)
        assert r.json()["status_code"] == 2001
        r = await http.patch(
            f"{sim._hub_url('tokens')}/DE/EMS/UNKNOWN",
            json={"valid": True, "last_updated": "2026-03-02T10:00:00Z"},
            headers=auth,
        )
        assert r.status_code == 404
        # a token of another party
        r = await http.put(
            f"{sim._hub_url('tokens')}/FR/OTH/1",
            json={**token, "country_code": "FR", "party_id": "OTH", "uid": "1"},
            headers=auth,
        )
        assert r.status_code == 404
    async with hub.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Token)) == 1
    stored = await token_pk(hub.db, "012345678")
    assert stored.valid is False


async def test_isolation_between_two_emsps(hub, sim, sim2):
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    cp = await seed_charge_point(hub.db, cpo, loc)
    await connect(hub, sim)
    await connect(hub, sim2)
    await sim.push_token(sim.make_token("A-CARD"))
    await sim2.push_token(sim2.make_token("B-CARD"))
    ta, tb = await token_pk(hub.db, "A-CARD"), await token_pk(hub.db, "B-CARD")
    sa = await seed_session(hub.db, cpo, cp, loc, ta, "SESS-A", tx="1")
    sb = await seed_session(hub.db, cpo, cp, loc, tb, "SESS-B", tx="2")
    await seed_cdr(hub.db, sa, cpo, ta.emsp_id, "CDR-A")
    await seed_cdr(hub.db, sb, cpo, tb.emsp_id, "CDR-B")

    assert [s["id"] for s in await sim.fetch_all("sessions")] == ["SESS-A"]
    assert [s["id"] for s in await sim2.fetch_all("sessions")] == ["SESS-B"]
    assert [c["id"] for c in await sim.fetch_all("cdrs")] == ["CDR-A"]
    assert [c["id"] for c in await sim2.fetch_all("cdrs")] == ["CDR-B"]
    r = await _get(sim, f"{sim._hub_url('sessions')}/SESS-B")
    assert r.status_code == 404
    r = await _get(sim, f"{sim._hub_url('cdrs')}/CDR-B")
    assert r.status_code == 404
    r = await _get(sim, f"{sim._hub_url('tokens')}/FR/OTH/B-CARD")
    assert r.status_code == 404
    # sim cannot speak as sim2
    r = await _get(
        sim, sim._hub_url("sessions"), headers={"OCPI-from-country-code": "FR", "OCPI-from-party-id": "OTH"}
    )
    assert r.status_code == 400 and r.json()["status_code"] == 2001
    # both see the CPO's locations
    assert len(await sim.fetch_all("locations")) == len(await sim2.fetch_all("locations")) == 1


async def test_roaming_agreement_limits_cpos(hub, sim):
    cpo1 = await seed_cpo(hub.db, "NL", "CPO")
    cpo2 = await seed_cpo(hub.db, "BE", "CP2")
    await seed_location(hub.db, cpo1, "L1")
    await seed_location(hub.db, cpo2, "L2")
    await connect(hub, sim, allowed_cpo_ids=[cpo1])
    assert [x["id"] for x in await sim.fetch_all("locations", to=("NL", "CPO"))] == ["L1"]
    r = await _get(
        sim, sim._hub_url("locations"), headers={"OCPI-to-country-code": "BE", "OCPI-to-party-id": "CP2"}
    )
    assert r.status_code == 404 and r.json()["status_code"] == 4001
