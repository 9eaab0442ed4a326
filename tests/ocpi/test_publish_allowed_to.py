"""Unpublished locations (``publish: false``) with ``publish_allowed_to``: only an eMSP owning a token that
matches all set fields of one PublishToken gets them (GET and pushes), with only its own matching entries."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from kernel.models import EVSE, Location
from ocpi.push.location_push import enqueue_evse_status
from tests.ocpi._helpers import connect
from tests.world.sites import T0, seed_cpo, seed_location

ENTRIES = [
    {"uid": "abc-1", "type": "RFID"},
    {"visual_number": "VIS-9", "issuer": "Other"},
    {"group_id": "DEPOT-7"},
    {"issuer": "Sim eMSP"},  # invalid (no uid, visual_number or group_id): matches nothing
]


async def _get(sim, location_id: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with sim.http() as http:
        return await http.get(
            f"{sim._hub_url('locations')}/{location_id}",
            headers={"Authorization": f"Token {sim.hub_token}", **sim.routing()},
        )


async def _ids(sim) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(loc["id"] for loc in await sim.fetch_all("locations"))


async def _setup(hub, sim, sim2):  # type: ignore[no-untyped-def]
    cpo = await seed_cpo(hub.db)
    await seed_location(hub.db, cpo, "LOC-PUB")
    priv = await seed_location(hub.db, cpo, "LOC-PRIV", publish=False)
    await seed_location(hub.db, cpo, "LOC-NONE", publish=False)  # no publish_allowed_to: nobody
    async with hub.db.session() as s:
        loc = await s.get(Location, priv)
        loc.data = {**loc.data, "publish_allowed_to": ENTRIES}
    await connect(hub, sim)
    await connect(hub, sim2)
    return cpo, priv


async def test_get_shows_unpublished_location_only_to_matching_token_owners(hub, sim, sim2):
    await _setup(hub, sim, sim2)
    assert await _ids(sim) == ["LOC-PUB"] and await _ids(sim2) == ["LOC-PUB"]
    assert (await _get(sim, "LOC-PRIV")).json()["status_code"] == 2003

    # uid (case-insensitive) + type
    await sim.push_token(sim.make_token("ABC-1"))
    assert await _ids(sim) == ["LOC-PRIV", "LOC-PUB"]
    got = (await _get(sim, "LOC-PRIV")).json()["data"]
    assert got["publish"] is False and got["publish_allowed_to"] == [{"uid": "abc-1", "type": "RFID"}]
    assert (await _get(sim, "LOC-NONE")).json()["status_code"] == 2003
    # the other eMSP: not by sim's token, not by a token of another type, not by a partial match
    assert await _ids(sim2) == ["LOC-PUB"]
    await sim2.push_token(sim2.make_token("abc-1", token_type="APP_USER"))
    visual = sim2.make_token("CARD-V")
    visual["visual_number"] = "VIS-9"  # issuer is "Other eMSP", the entry wants "Other"
    await sim2.push_token(visual)
    assert await _ids(sim2) == ["LOC-PUB"]
    assert (await _get(sim2, "LOC-PRIV")).json()["status_code"] == 2003
    # group_id (case-insensitive)
    grouped = sim2.make_token("CARD-G")
    grouped["group_id"] = "depot-7"
    await sim2.push_token(grouped)
    assert await _ids(sim2) == ["LOC-PRIV", "LOC-PUB"]
    assert (await _get(sim2, "LOC-PRIV")).json()["data"]["publish_allowed_to"] == [{"group_id": "DEPOT-7"}]
    # EVSE level follows the location
    async with sim.http() as http:
        r = await http.get(
            f"{sim._hub_url('locations')}/LOC-PRIV/LOC-PRIV-E1",
            headers={"Authorization": f"Token {sim.hub_token}", **sim.routing()},
        )
        assert r.json()["data"]["uid"] == "LOC-PRIV-E1"


async def test_pushes_follow_publish_allowed_to(hub, sim, sim2):
    _cpo, priv = await _setup(hub, sim, sim2)
    await sim.push_token(sim.make_token("ABC-1"))
    await hub.component.scan_once()
    await sim.wait_for(lambda: {"LOC-PUB", "LOC-PRIV"} <= set(sim.locations))
    await sim2.wait_for(lambda: "LOC-PUB" in sim2.locations)
    assert sim.locations["LOC-PRIV"]["publish_allowed_to"] == [{"uid": "abc-1", "type": "RFID"}]
    assert "LOC-PRIV" not in sim2.locations and "LOC-NONE" not in sim.locations
    # a status change reaches only who may see it
    async with hub.db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == "LOC-PRIV-E1"))
        assert await enqueue_evse_status(evse, s, "CHARGING") == 1
    await sim.wait_for(lambda: sim.locations["LOC-PRIV"]["evses"][0]["status"] == "CHARGING")
    # a token arriving later makes it visible: the scanner sends it
    grouped = sim2.make_token("CARD-G")
    grouped["group_id"] = "DEPOT-7"
    await sim2.push_token(grouped)
    await hub.component.scan_once()
    await sim2.wait_for(lambda: "LOC-PRIV" in sim2.locations)
    assert sim2.locations["LOC-PRIV"]["publish_allowed_to"] == [{"group_id": "DEPOT-7"}]
    # the CPO drops sim's entry: sim gets the location once more with publish false and no entries, then
    # nothing more; its GET no longer finds it
    async with hub.db.session() as s:
        loc = await s.get(Location, priv)
        loc.data = {**loc.data, "publish_allowed_to": [{"group_id": "DEPOT-7"}]}
        loc.last_updated = T0.replace(year=2026, month=4)
    await hub.component.scan_once()
    await sim.wait_for(lambda: "publish_allowed_to" not in sim.locations["LOC-PRIV"])
    assert sim.locations["LOC-PRIV"]["publish"] is False
    assert (await _get(sim, "LOC-PRIV")).json()["status_code"] == 2003
    before = len([r for r in sim.log if "LOC-PRIV" in r.path])
    async with hub.db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == "LOC-PRIV-E2"))
        assert await enqueue_evse_status(evse, s, "CHARGING") == 1  # to sim2 only
    await sim2.wait_for(lambda: sim2.locations["LOC-PRIV"]["evses"][1]["status"] == "CHARGING")
    await hub.component.scan_once()
    assert len([r for r in sim.log if "LOC-PRIV" in r.path]) == before
    assert sim.locations["LOC-PRIV"]["evses"][1]["status"] == "AVAILABLE"
