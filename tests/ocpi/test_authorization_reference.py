"""The eMSP's ``authorization_reference`` (real-time authorization, START_SESSION) is kept with the session the
gateway opens and sent in the OCPI Session and in the CDR."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from cpo_gateway.events import ChargerRef, SessionEnded, SessionStarted
from cpo_gateway.session_store import SessionStore
from evhub import provisioning as prov
from kernel.models import EVSE, ChargingSession
from tariffs.rating import rate_pending
from tests.ocpi._helpers import FakeGateway, connect
from tests.world.sites import T0, seed_charge_point, seed_cpo, seed_location


async def _charger(hub, cpo: int, loc: int) -> tuple[SessionStore, ChargerRef]:  # type: ignore[no-untyped-def]
    cp = await seed_charge_point(hub.db, cpo, loc, "CP-REF")
    async with hub.db.session() as s:
        evses = (await s.scalars(select(EVSE).where(EVSE.location_id == loc).order_by(EVSE.id))).all()
        evse_map = {n: e.id for n, e in enumerate(evses, start=1)}
        await prov.import_tariff(
            s,
            {
                "country_code": "NL",
                "party_id": "CPO",
                "id": "DEFAULT",
                "currency": "EUR",
                "elements": [{"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}],
                "last_updated": "2026-01-01T00:00:00Z",
            },
        )
    ref = ChargerRef(cp, "CP-REF", cpo, loc, "1.6", "Accepted", evse_map)
    return SessionStore(hub.db, hub.hooks), ref


async def _session(hub, uid: str) -> ChargingSession:  # type: ignore[no-untyped-def]
    async with hub.db.session() as s:
        return await s.scalar(select(ChargingSession).where(ChargingSession.id_tag == uid))


async def test_realtime_reference_goes_into_session_and_cdr(hub, sim):
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    await connect(hub, sim)
    await sim.push_token(sim.make_token("RT-REF", whitelist="NEVER"))
    store, charger = await _charger(hub, cpo, loc)
    # the charger's StartTransaction: the gateway asks through its seam, the eMSP answers with a reference
    auth = await hub.services.realtime_authorizer.authorize(
        "RT-REF", "RFID", charge_point_id=charger.id, location_id=loc, evse_pk=charger.evse_map[1]
    )
    assert auth.accepted and auth.authorization_reference and auth.authorization_reference.startswith("auth-")
    reference = auth.authorization_reference
    started = SessionStarted(None, 1, 1, "RT-REF", T0, Decimal(1000))
    tx, _opened = await store.start_v16(charger, started, auth)
    cs = await _session(hub, "RT-REF")
    assert cs.data["authorization_reference"] == reference
    await sim.wait_for(lambda: cs.session_uid in sim.sessions)
    assert sim.sessions[cs.session_uid]["authorization_reference"] == reference
    # the session ends and is priced: the CDR carries the reference
    await store.ended(charger, SessionEnded(tx, T0 + timedelta(hours=1), Decimal(12000), "Local", "RT-REF"))
    assert await rate_pending(hub.db, hub.hooks.cdr) == 1
    await sim.wait_for(lambda: len(sim.cdrs) == 1)
    assert sim.cdrs[0]["authorization_reference"] == reference and sim.cdrs[0]["session_id"] == cs.session_uid


async def test_start_session_reference_goes_into_session(hub, sim):
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    await connect(hub, sim)
    hub.services.gateway = FakeGateway()
    await sim.push_token(sim.make_token("APP-REF"))
    store, charger = await _charger(hub, cpo, loc)
    body = {
        "token": sim.tokens[("APP-REF", "RFID")],
        "location_id": "LOC1",
        "evse_uid": "LOC1-E1",
        "authorization_reference": "REF-FROM-EMSP-1",
    }
    ref, response = await sim.command("START_SESSION", body)
    assert response["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results)
    # the charger starts the transaction (whitelisted token, no real-time call)
    auth = await store_auth(hub, charger, "APP-REF")
    await store.start_v16(charger, SessionStarted(None, 1, 1, "APP-REF", T0, Decimal(0)), auth)
    cs = await _session(hub, "APP-REF")
    assert cs.data["authorization_reference"] == "REF-FROM-EMSP-1"
    await sim.wait_for(lambda: cs.session_uid in sim.sessions)
    assert sim.sessions[cs.session_uid]["authorization_reference"] == "REF-FROM-EMSP-1"
    # a second session of the token gets no stale reference
    await store.start_v16(
        charger, SessionStarted(None, 2, 2, "APP-REF", T0 + timedelta(hours=2), Decimal(0)), auth
    )
    async with hub.db.session() as s:
        rows = (await s.scalars(select(ChargingSession).where(ChargingSession.id_tag == "APP-REF"))).all()
    assert sorted(bool((r.data or {}).get("authorization_reference")) for r in rows) == [False, True]


async def store_auth(hub, charger: ChargerRef, uid: str):  # type: ignore[no-untyped-def]
    from cpo_gateway.authorization import Authorizer

    return await Authorizer(hub.db, hub.services).authorize(uid, "RFID", charge_point_id=charger.id)
