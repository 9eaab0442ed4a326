"""Pushes through the durable outbox to a partner that fails, times out and recovers; session -> CDR."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from kernel.models import (
    ChargingSession,
    OutboxMessage,
    OutboxStatus,
    SessionStatus,
)
from kernel.outbox import list_messages
from ocpi.partners import partner_health
from ocpi.push.cdr_push import enqueue_cdr
from ocpi.push.location_push import enqueue_evse_status
from ocpi.push.session_push import enqueue_session_update
from ocpi.push.tariff_push import enqueue_tariff_delete
from tests.ocpi._helpers import wait_until
from tests.ocpi._pushes import meter, queue_dyn_tariff, seed_push_world
from tests.world.cdrs import seed_cdr
from tests.world.sessions import seed_session
from tests.world.sites import T0


async def test_session_flows_to_cdr_post_exactly_once(hub, sim):
    cpo, loc, cp, partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, "SESS-1")
    async with hub.db.session() as s:
        assert await enqueue_session_update(sid, s) == 1
    await sim.wait_for(lambda: "SESS-1" in sim.sessions)
    assert sim.sessions["SESS-1"]["status"] == "ACTIVE"
    assert sim.sessions["SESS-1"]["cdr_token"]["uid"] == "CARD-1"
    await meter(hub.db, sid, 15, 3000)
    # delivered before the next reading: a PATCH still queued would take the next one in (coalesced)
    await sim.wait_for(lambda: len(sim.sessions["SESS-1"].get("charging_periods", [])) == 1)
    await meter(hub.db, sid, 30, 6500)
    await sim.wait_for(lambda: len(sim.sessions["SESS-1"].get("charging_periods", [])) == 2)
    assert sim.sessions["SESS-1"]["kwh"] == 5.5
    patches = [r for r in sim.log if r.method == "PATCH" and "/sessions/" in r.path]
    assert len(patches) == 2 and len(patches[1].body["charging_periods"]) == 1  # only new periods
    # the session ends, the CDR is posted once
    async with hub.db.session() as s:
        cs = await s.get(ChargingSession, sid)
        cs.status = SessionStatus.COMPLETED
        cs.end_time = T0 + timedelta(hours=1)
        cs.last_updated = T0 + timedelta(hours=1)
        await enqueue_session_update(cs, s)
    cdr_pk = await seed_cdr(hub.db, sid, cpo, token.emsp_id, "CDR-1")
    async with hub.db.session() as s:
        assert await enqueue_cdr(cdr_pk, s) == 1
        assert await enqueue_cdr(cdr_pk, s) == 0  # idempotent
    await sim.wait_for(lambda: len(sim.cdrs) == 1)
    await sim.wait_for(lambda: sim.sessions["SESS-1"]["status"] == "COMPLETED")
    assert await hub.component.scan_once() == 1  # the safety net: only the location was never sent
    assert await hub.component.scan_once() == 0
    await sim.wait_for(lambda: "LOC1" in sim.locations)
    rows = await list_messages(hub.db, status="delivered")
    cdr_rows = [r for r in rows if r.summary.startswith("POST cdrs")]
    assert len(cdr_rows) == 1
    async with hub.db.session() as s:
        msg = await s.get(OutboxMessage, cdr_rows[0].id)
        assert msg.result["location"].endswith("/cdrs/CDR-1")  # the Location header is kept
    assert [c["id"] for c in sim.cdrs] == ["CDR-1"]

    async def nothing_pending() -> bool:
        return (await partner_health(hub.db, partner_id))["outbox"]["pending"] == 0

    # the location PUT is marked delivered just after the simulator answered it
    await wait_until(nothing_pending, "every message to the partner delivered")
    health = await partner_health(hub.db, partner_id)
    assert health["healthy"] and health["outbox"]["pending"] == 0 and health["outbox"]["parked"] == 0
    assert health["reasons"] == []


async def test_partner_down_then_recovers_everything_in_order(hub, sim):
    cpo, loc, cp, partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, "SESS-2")
    sim.misbehave("error", status=503)
    async with hub.db.session() as s:
        await enqueue_session_update(sid, s)
    for minutes, wh in ((10, 2000), (20, 3500), (30, 5000)):
        await meter(hub.db, sid, minutes, wh)
    cdr_pk = await seed_cdr(hub.db, sid, cpo, token.emsp_id, "CDR-2")
    async with hub.db.session() as s:
        await enqueue_cdr(cdr_pk, s)
    await sim.wait_for(lambda: len(sim.log) >= 6)  # several failed attempts
    assert sim.sessions == {} and sim.cdrs == []
    health = await partner_health(hub.db, partner_id)
    # the PUT, one PATCH carrying the three readings (queued behind the PUT, never tried: coalesced), the CDR
    assert health["outbox"]["pending"] == 3 and "503" in (health["last_error"] or "")
    async with hub.db.session() as s:
        patches = (
            await s.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.status == OutboxStatus.PENDING,
                    OutboxMessage.ordering_key.like("%:sessions:%"),
                )
                .order_by(OutboxMessage.id)
            )
        ).all()
    # the later message of the session never attempted while the first is pending
    assert [(m.payload["method"], m.coalesced) for m in patches] == [("PUT", 0), ("PATCH", 2)]
    assert patches[1].attempts == 0
    # slow answers and timeouts are retried as well
    sim.misbehave("timeout", delay=0.3, count=2)
    assert hub.hub.services.outbox is hub.dispatcher  # the dispatcher service is exposed
    await sim.wait_for(
        lambda: len(sim.cdrs) == 1 and len(sim.sessions.get("SESS-2", {}).get("charging_periods", [])) == 3,
        timeout=20,
    )
    session_calls = [r for r in sim.log if "/sessions/" in r.path and r.answered == 200]
    assert [r.method for r in session_calls] == ["PUT", "PATCH"]  # the three readings in one PATCH
    assert [r.body["kwh"] for r in session_calls] == [0, 4.0]
    assert len(session_calls[1].body["charging_periods"]) == 3
    assert len(sim.cdrs) == 1

    async def all_delivered() -> bool:
        return {r.status for r in await list_messages(hub.db)} == {"delivered"}

    # the last message is marked delivered just after the simulator answered it
    await wait_until(all_delivered, "every message delivered")


async def test_refusal_is_parked_with_its_reason(hub, sim):
    cpo, loc, cp, partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, "SESS-3")
    cdr_pk = await seed_cdr(hub.db, sid, cpo, token.emsp_id, "CDR-3")
    sim.misbehave("error", status=400, paths=("/cdrs",))
    async with hub.db.session() as s:
        await enqueue_cdr(cdr_pk, s)
    await sim.wait_for(lambda: any("/cdrs" in r.path for r in sim.log))

    async def parked() -> bool:
        return bool(await list_messages(hub.db, status="parked"))

    await wait_until(parked, "the refused CDR parked")
    rows = await list_messages(hub.db, status="parked")
    assert len(rows) == 1 and rows[0].attempts == 1
    assert rows[0].parked_reason.startswith("refused: POST ") and "HTTP 400" in rows[0].parked_reason
    health = await partner_health(hub.db, partner_id)
    assert not health["healthy"] and health["outbox"]["parked"] == 1
    assert any("1 message(s) parked" in r and "HTTP 400" in r for r in health["reasons"])


async def test_locations_evse_status_and_tariffs_pushed(hub, sim):
    cpo, *_ = await seed_push_world(hub, sim)
    # the scanner sends the locations the partner has never seen
    assert await hub.component.scan_once() >= 1
    await sim.wait_for(lambda: "LOC1" in sim.locations)
    async with hub.db.session() as s:
        from kernel.models import EVSE

        evse = await s.scalar(select(EVSE).where(EVSE.uid == "LOC1-E1"))
        assert await enqueue_evse_status(evse, s, "CHARGING") == 1
    await sim.wait_for(lambda: sim.locations["LOC1"]["evses"][0]["status"] == "CHARGING")
    assert await hub.component.scan_once() == 0
    # a status changed by someone who did not push: the scanner catches it
    async with hub.db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == "LOC1-E2"))
        evse.status = "OUTOFORDER"
    assert await hub.component.scan_once() == 1
    await sim.wait_for(lambda: sim.locations["LOC1"]["evses"][1]["status"] == "OUTOFORDER")
    # every tariff version is pushed, in order (each while it is the latest); a deletion too
    for version, price in ((1, 0.25), (2, 0.31)):
        await queue_dyn_tariff(hub.db, cpo, version, price)
        await sim.wait_for(
            lambda price=price: (
                sim.tariffs.get("DYN", {})
                .get("elements", [{}])[0]
                .get("price_components", [{}])[0]
                .get("price")
                == price
            )
        )
    puts = [
        r.body["elements"][0]["price_components"][0]["price"]
        for r in sim.log
        if r.method == "PUT" and "/tariffs/" in r.path
    ]
    assert puts == [0.25, 0.31]
    assert [t["id"] for t in await sim.fetch_all("tariffs")] == ["DYN"]
    async with hub.db.session() as s:
        await enqueue_tariff_delete(cpo, "DYN", s)
    await sim.wait_for(lambda: "DYN" not in sim.tariffs)


async def test_hooks_for_other_packages(hub, sim):
    cpo, loc, cp, _partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, "SESS-H")
    cdr_pk = await seed_cdr(hub.db, sid, cpo, token.emsp_id, "CDR-H")
    async with hub.db.session() as s:
        cs = await s.get(ChargingSession, sid)
        for hook in hub.hooks.session:
            await hook(s, cs)
        from kernel.models import Cdr

        cdr = await s.get(Cdr, cdr_pk)
        for hook in hub.hooks.cdr:
            await hook(s, cdr)
            await hook(s, cdr)  # twice: still one POST
    await sim.wait_for(lambda: "SESS-H" in sim.sessions and len(sim.cdrs) == 1)
    assert [c["id"] for c in sim.cdrs] == ["CDR-H"]
