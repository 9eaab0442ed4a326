"""Issue 15: OCPI PATCHes of one object queued and not yet sent to a partner are coalesced into one message with
the latest state (OCPI 2.2.1 PATCH semantics: later values win, ``last_updated`` the latest, a session's charging
periods appended in order); a PUT supersedes the unsent messages of its object before it.

Never across partners or objects, never into a row an attempt has leased (it may be on its way), never across
an unsent PUT; CDRs are POSTed once each. The partner answers 503 while messages queue, so the session's first
PUT (tried, failing) holds everything behind it unsent, and nothing depends on timing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from kernel.models import EVSE, OutboxMessage, OutboxPriority, OutboxStatus
from kernel.timeutil import format_rfc3339
from ocpi.push.cdr_push import enqueue_cdr
from ocpi.push.location_push import enqueue_evse_status, enqueue_location
from ocpi.push.session_push import enqueue_session_update
from tests.ocpi._helpers import connect, token_pk, wait_until
from tests.ocpi._pushes import meter, seed_push_world
from tests.world.cdrs import seed_cdr
from tests.world.sessions import seed_session
from tests.world.sites import T0


async def _rows(db, fragment: str = "") -> list[OutboxMessage]:
    async with db.session() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    return [r for r in rows if fragment in r.ordering_key]


async def _put_session(db, session_pk: int) -> None:
    async with db.session() as s:
        await enqueue_session_update(session_pk, s)


async def _tried(sim, fragment: str, since: int = 0) -> None:
    """Wait until the (failing) partner was sent a request on ``fragment`` after the first ``since`` requests it
    logged: that row was leased."""
    await wait_until(lambda: any(fragment in r.path for r in sim.log[since:]), f"a request on {fragment}")


def _session_calls(sim, uid: str) -> list:
    return [r for r in sim.log if "/sessions/" in r.path and r.path.endswith(uid) and r.answered == 200]


async def test_three_patches_of_a_session_are_one_delivery_with_the_last_values(hub, sim, sim2):
    cpo, loc, cp, partner_id, token = await seed_push_world(hub, sim)
    other_partner = await connect(hub, sim2)
    await sim2.push_token(sim2.make_token("CARD-2"))
    token2 = await token_pk(hub.db, "CARD-2")
    sim.misbehave("error", status=503)
    sim2.misbehave("error", status=503)
    a = await seed_session(hub.db, cpo, cp, loc, token, "S-A")
    b = await seed_session(hub.db, cpo, cp, loc, token, "S-B", tx="2")
    c = await seed_session(hub.db, cpo, cp, loc, token2, "S-C", tx="3")
    for pk in (a, b, c):
        await _put_session(hub.db, pk)
    await _tried(sim, "/sessions/")
    await _tried(sim2, "/sessions/")
    # interleaved: three readings of S-A, two of S-B (same partner), two of S-C (another partner), a CDR of S-A
    await meter(hub.db, a, 10, 2000)
    await meter(hub.db, b, 10, 1500)
    await meter(hub.db, c, 10, 1200)
    await meter(hub.db, a, 20, 3500)
    cdr_pk = await seed_cdr(hub.db, a, cpo, token.emsp_id, "CDR-A")
    async with hub.db.session() as s:
        assert await enqueue_cdr(cdr_pk, s) == 1
    await meter(hub.db, b, 20, 2500)
    await meter(hub.db, c, 20, 1800)
    await meter(hub.db, a, 30, 5000)

    def patches(key: str, rows: list[OutboxMessage]) -> list[OutboxMessage]:
        return [r for r in rows if r.ordering_key == key and r.payload["method"] == "PATCH"]

    rows = await _rows(hub.db)
    [pa] = patches(f"ocpi:{partner_id}:sessions:S-A", rows)
    [pb] = patches(f"ocpi:{partner_id}:sessions:S-B", rows)
    [pc] = patches(f"ocpi:{other_partner}:sessions:S-C", rows)
    assert (pa.coalesced, pa.attempts, pa.status) == (2, 0, OutboxStatus.PENDING)
    assert pa.payload["body"]["kwh"] == 4.0 and len(pa.payload["body"]["charging_periods"]) == 3
    assert pa.payload["body"]["last_updated"] == format_rfc3339(T0 + timedelta(minutes=30))
    # the other session of the partner and the other partner's session: each its own message, its own values
    assert pb.coalesced == 1 and pb.payload["body"]["kwh"] == 1.5
    assert (
        pc.coalesced == 1 and float(pc.payload["body"]["kwh"]) == 0.8 and pc.destination == str(other_partner)
    )
    assert pc.payload["headers"] != pa.payload["headers"]  # routed to the other partner's role
    # the CDR is its own message, POSTed once, never merged; the pushes are bulk, the CDR a record
    [cdr_row] = [r for r in rows if ":cdrs:" in r.ordering_key]
    assert cdr_row.payload["method"] == "POST" and cdr_row.coalesced == 0
    assert (pa.priority, cdr_row.priority) == (OutboxPriority.BULK, OutboxPriority.NORMAL)

    sim.behave()
    sim2.behave()
    await sim.wait_for(lambda: len(sim.cdrs) == 1 and sim.sessions.get("S-A", {}).get("kwh") == 4.0)
    await sim.wait_for(lambda: sim.sessions.get("S-B", {}).get("kwh") == 1.5)
    await sim2.wait_for(lambda: float(sim2.sessions.get("S-C", {}).get("kwh", 0)) == 0.8)
    calls = _session_calls(sim, "S-A")
    assert [r.method for r in calls] == ["PUT", "PATCH"]  # one delivery for the three readings
    assert calls[1].body["kwh"] == 4.0 and len(calls[1].body["charging_periods"]) == 3
    assert len(sim.sessions["S-A"]["charging_periods"]) == 3  # appended once each, in order
    starts = [p["start_date_time"] for p in sim.sessions["S-A"]["charging_periods"]]
    assert starts == sorted(starts)
    assert [r.method for r in _session_calls(sim, "S-B")] == ["PUT", "PATCH"]
    assert [r.method for r in _session_calls(sim2, "S-C")] == ["PUT", "PATCH"]
    assert [c["id"] for c in sim.cdrs] == ["CDR-A"] and sim2.cdrs == []


async def test_a_leased_patch_is_never_merged_into(hub, sim):
    cpo, loc, cp, _partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, "S-LEASE")
    await _put_session(hub.db, sid)
    await sim.wait_for(lambda: "S-LEASE" in sim.sessions)
    since = len(sim.log)
    sim.misbehave("error", status=503)
    await meter(hub.db, sid, 10, 2000)
    # the first PATCH was leased (and failed): it may have reached the partner
    await _tried(sim, "/sessions/", since)
    await meter(hub.db, sid, 20, 3500)
    await meter(hub.db, sid, 30, 5000)
    rows = [r for r in await _rows(hub.db, ":sessions:S-LEASE") if r.payload["method"] == "PATCH"]
    assert [(r.coalesced, r.payload["body"]["kwh"]) for r in rows] == [(0, 1.0), (1, 4.0)]
    assert rows[0].attempts >= 1 and rows[1].attempts == 0
    assert len(rows[0].payload["body"]["charging_periods"]) == 1  # the leased one kept exactly what it had
    sim.behave()
    await sim.wait_for(lambda: sim.sessions["S-LEASE"]["kwh"] == 4.0)
    calls = [r for r in _session_calls(sim, "S-LEASE") if r.method == "PATCH"]
    assert [(r.body["kwh"], len(r.body["charging_periods"])) for r in calls] == [(1.0, 1), (4.0, 2)]
    assert len(sim.sessions["S-LEASE"]["charging_periods"]) == 3


async def test_evse_patches_keep_their_order_and_a_put_supersedes_what_is_unsent_before_it(hub, sim):
    _cpo, loc, _cp, _partner_id, _token = await seed_push_world(hub, sim)
    sim.misbehave("error", status=503)
    async with hub.db.session() as s:
        assert await enqueue_location(loc, s) == 1
    await _tried(sim, "/locations/")  # the head: leased, failing

    async def status(uid: str, value: str) -> None:
        async with hub.db.session() as s:
            evse = await s.scalar(select(EVSE).where(EVSE.uid == uid))
            assert await enqueue_evse_status(evse, s, value) == 1

    await status("LOC1-E1", "CHARGING")
    await status("LOC1-E2", "OUTOFORDER")
    await status("LOC1-E1", "AVAILABLE")  # E1 flaps: its unsent PATCH is replaced, queued after E2's
    await status("LOC1-E1", "BLOCKED")  # merged into the newest (E1's)
    rows = await _rows(hub.db, ":locations:")
    assert [
        (r.payload["method"], r.payload["path"].rsplit("/", 1)[-1], r.status, r.coalesced) for r in rows
    ] == [
        ("PUT", "LOC1", OutboxStatus.PENDING, 0),
        ("PATCH", "LOC1-E1", OutboxStatus.SUPERSEDED, 0),
        ("PATCH", "LOC1-E2", OutboxStatus.PENDING, 0),
        ("PATCH", "LOC1-E1", OutboxStatus.PENDING, 1),
    ]
    assert rows[3].payload["body"]["status"] == "BLOCKED"
    assert rows[1].result["superseded_by"].startswith(f"outbox {rows[3].id} (PATCH locations/")
    # a new PUT of the location carries every EVSE's status: the unsent PATCHes before it are closed, the
    # leased head PUT (it may be on its way) is left as it is
    async with hub.db.session() as s:
        assert await enqueue_location(loc, s) == 1
    rows = await _rows(hub.db, ":locations:")
    assert [r.status for r in rows] == [OutboxStatus.PENDING] + [OutboxStatus.SUPERSEDED] * 3 + [
        OutboxStatus.PENDING
    ]
    assert {r.result["superseded_by"] for r in rows[2:4]} == {
        f"outbox {rows[4].id} (PUT locations/NL/CPO/LOC1)"
    }
    # a PATCH behind the unsent PUT is never merged across it
    await status("LOC1-E2", "AVAILABLE")
    rows = await _rows(hub.db, ":locations:")
    assert [(r.payload["method"], r.status, r.coalesced) for r in rows[4:]] == [
        ("PUT", OutboxStatus.PENDING, 0),
        ("PATCH", OutboxStatus.PENDING, 0),
    ]
    sim.behave()

    def answered() -> list[tuple[str, str]]:
        return [
            (r.method, r.path.rsplit("/", 1)[-1])
            for r in sim.log
            if r.answered == 200 and "/locations/" in r.path
        ]

    await sim.wait_for(lambda: len(answered()) == 3)
    answered = answered()
    assert answered == [("PUT", "LOC1"), ("PUT", "LOC1"), ("PATCH", "LOC1-E2")]
    assert [e["status"] for e in sim.locations["LOC1"]["evses"]] == ["BLOCKED", "AVAILABLE"]
