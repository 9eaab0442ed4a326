"""Commands naming a location (START_SESSION, RESERVE_NOW, UNLOCK_CONNECTOR) follow the Locations sender's
visibility: an unpublished location only for an eMSP owning a token its ``publish_allowed_to`` matches, only
CPOs of the partner's ``allowed_cpo_ids``; any other location is answered exactly as an unknown one (2003)
and nothing reaches the charger."""

from __future__ import annotations

import logging

import httpx
from sqlalchemy import func, select

from kernel.models import EVSE, ChargePointEvse, Location
from kernel.models.roaming import OcpiAuthorization, OcpiPendingCommand
from tests.ocpi._helpers import connect
from tests.world.sites import seed_charge_point, seed_cpo, seed_location

ALLOWED_TO = [{"uid": "abc-1", "type": "RFID"}]


class OcppGateway:
    """The gateway's generic command API: every OCPP call that would reach a charger is recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []

    async def send(self, identity, action, payload, timeout=None):  # type: ignore[no-untyped-def]
        self.sent.append((identity, action, payload))
        return {"status": "Accepted"}


async def _charger(hub, cpo: int, location_ocpi_id: str, identity: str) -> None:  # type: ignore[no-untyped-def]
    async with hub.db.session() as s:
        loc = await s.scalar(select(Location).where(Location.ocpi_id == location_ocpi_id))
        evse = await s.scalar(select(EVSE).where(EVSE.uid == f"{location_ocpi_id}-E1"))
        assert loc is not None and evse is not None
        loc_pk, evse_pk = loc.id, evse.id
    cp = await seed_charge_point(hub.db, cpo, loc_pk, identity)
    async with hub.db.session() as s:
        s.add(ChargePointEvse(charge_point_id=cp, ocpp_evse_id=1, evse_pk=evse_pk))


async def _post(sim, command: str, body: dict, to: tuple[str, str] | None = None) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with sim.http() as http:
        return await http.post(
            f"{sim._hub_url('commands')}/{command}",
            json={"response_url": f"{sim.base_url}/emsp/2.2.1/commands/{command}/x", **body},
            headers={"Authorization": f"Token {sim.hub_token}", **sim.routing(*(to or (None, None)))},
        )


def _answer(r: httpx.Response) -> tuple[int, int, str]:
    payload = r.json()
    return r.status_code, payload["status_code"], payload["status_message"]


def _unknown(location_id: str) -> tuple[int, int, str]:
    return 404, 2003, f"Unknown location {location_id}"


async def _count(hub, model) -> int:  # type: ignore[no-untyped-def]
    async with hub.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_unpublished_location_only_for_owners_of_a_matching_token(hub, sim, sim2, caplog):
    cpo = await seed_cpo(hub.db)
    priv = await seed_location(hub.db, cpo, "LOC-PRIV", publish=False)
    await seed_location(hub.db, cpo, "LOC-NONE", publish=False)  # no publish_allowed_to: nobody
    async with hub.db.session() as s:
        loc = await s.get(Location, priv)
        loc.data = {**loc.data, "publish_allowed_to": ALLOWED_TO}
    await _charger(hub, cpo, "LOC-PRIV", "CP-PRIV")
    await _charger(hub, cpo, "LOC-NONE", "CP-NONE")
    await connect(hub, sim)
    await connect(hub, sim2)
    gw = OcppGateway()
    hub.services.gateway = gw

    # sim owns a token matching the entry (uid case-insensitive, same type): it may start a session there
    await sim.push_token(sim.make_token("ABC-1"))
    ref, response = await sim.start_session("LOC-PRIV", "LOC-PRIV-E1", "1", "ABC-1")
    assert response["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results)
    assert sim.command_results[ref]["result"] == "ACCEPTED"
    assert gw.sent == [("CP-PRIV", "RemoteStartTransaction", {"idTag": "ABC-1", "connectorId": 1})]
    pending, authorizations = await _count(hub, OcpiPendingCommand), await _count(hub, OcpiAuthorization)

    # sim2 owns no matching token (another type does not match; a token named in the command but never
    # issued by sim2 does not count): every command naming the location gets what an unknown one gets
    await sim2.push_token(sim2.make_token("abc-1", token_type="APP_USER"))
    await sim2.push_token(sim2.make_token("OTH-1"))
    start = {"location_id": "LOC-PRIV", "evse_uid": "LOC-PRIV-E1", "connector_id": "1"}
    caplog.set_level(logging.WARNING, logger="ocpi.modules.commands")
    for uid in ("OTH-1", "ABC-1"):
        token = sim2.make_token(uid)
        r = await _post(sim2, "START_SESSION", {**start, "token": token, "authorization_reference": "REF-X"})
        assert _answer(r) == _unknown("LOC-PRIV")
    r = await _post(
        sim2, "START_SESSION", {**start, "location_id": "NOPE", "token": sim2.make_token("OTH-1")}
    )
    assert _answer(r) == _unknown("NOPE")
    # a hidden location with an unknown EVSE still answers "Unknown location" (not "Unknown EVSE")
    r = await _post(sim2, "START_SESSION", {**start, "evse_uid": "NOPE", "token": sim2.make_token("OTH-1")})
    assert _answer(r) == _unknown("LOC-PRIV")
    r = await _post(
        sim2,
        "RESERVE_NOW",
        {
            "token": sim2.make_token("OTH-1"),
            "expiry_date": "2030-01-01T00:00:00Z",
            "reservation_id": "RES-1",
            "location_id": "LOC-PRIV",
            "evse_uid": "LOC-PRIV-E1",
        },
    )
    assert _answer(r) == _unknown("LOC-PRIV")
    r = await _post(
        sim2, "UNLOCK_CONNECTOR", {"location_id": "LOC-PRIV", "evse_uid": "LOC-PRIV-E1", "connector_id": "1"}
    )
    assert _answer(r) == _unknown("LOC-PRIV")
    # an unpublished location without publish_allowed_to: nobody, not even sim
    r = await _post(
        sim, "START_SESSION", {**start, "location_id": "LOC-NONE", "token": sim.make_token("ABC-1")}
    )
    assert _answer(r) == _unknown("LOC-NONE")

    # every command the hub accepts is a pending row before the gateway is called (ocpi.command_runner): no new
    # row, nothing that could still reach the charger
    assert await _count(hub, OcpiPendingCommand) == pending
    assert await _count(hub, OcpiAuthorization) == authorizations
    assert len(gw.sent) == 1
    refused = [r.getMessage() for r in caplog.records if r.name == "ocpi.modules.commands"]
    assert len(refused) == 6 and all("may not see" in m for m in refused)
    assert any("RESERVE_NOW" in m and "LOC-PRIV" in m for m in refused)


async def test_roaming_agreement_limits_the_locations_commands_reach(hub, sim):
    cpo1 = await seed_cpo(hub.db, "NL", "CPO")
    cpo2 = await seed_cpo(hub.db, "BE", "CP2", name="Other CPO")
    await seed_location(hub.db, cpo1, "L1")
    await seed_location(hub.db, cpo2, "L2")
    await _charger(hub, cpo1, "L1", "CP-L1")
    await _charger(hub, cpo2, "L2", "CP-L2")
    await connect(hub, sim, allowed_cpo_ids=[cpo1])
    gw = OcppGateway()
    hub.services.gateway = gw
    await sim.push_token(sim.make_token("RF-1"))

    ref, response = await sim.start_session("L1", "L1-E1", "1", "RF-1", to=("NL", "CPO"))
    assert response["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results)
    assert [identity for identity, _, _ in gw.sent] == ["CP-L1"]

    token = sim.make_token("RF-1")
    start = {"token": token, "location_id": "L2", "evse_uid": "L2-E1", "connector_id": "1"}
    # the other CPO's location named through the agreed CPO: an unknown location
    r = await _post(sim, "START_SESSION", start, to=("NL", "CPO"))
    assert _answer(r) == _unknown("L2")
    r = await _post(
        sim,
        "UNLOCK_CONNECTOR",
        {"location_id": "L2", "evse_uid": "L2-E1", "connector_id": "1"},
        to=("NL", "CPO"),
    )
    assert _answer(r) == _unknown("L2")
    # addressing the other CPO itself is refused by routing before any location is looked up (4001)
    r = await _post(sim, "START_SESSION", start, to=("BE", "CP2"))
    assert r.status_code == 404 and r.json()["status_code"] == 4001

    # no pending row but the accepted one: nothing else can still reach a charger (see above)
    assert await _count(hub, OcpiPendingCommand) == 1
    assert [identity for identity, _, _ in gw.sent] == ["CP-L1"]
