"""Issue 13, item 3: partners that fail are retried and re-synced, never dropped.

A partner answering 403 or 404 for a while gets everything once it works again, in order, nothing parked; what
the partner refused is parked with its reason and keeps blocking its object, and a re-sync (the first success
after failures, ``evhub partners resync``, ``evhub outbox retry``) sends the object's current state instead of
the stale messages; ``evhub outbox list`` shows the backlog by partner, ``evhub_outbox_backlog{partner}`` too,
and the partner's health tells the truth (with its reasons)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from typer.testing import CliRunner, Result

from kernel.models import (
    EVSE,
    ChargingSession,
    OutboxMessage,
    OutboxStatus,
    SessionStatus,
)
from kernel.outbox import list_messages, refresh_metrics
from ocpi.partners import partner_health
from ocpi.push.cdr_push import enqueue_cdr
from ocpi.push.location_push import enqueue_evse_status
from ocpi.push.session_push import enqueue_session_update
from tests.ocpi._helpers import advance_clock, connect, wait_until
from tests.ocpi._pushes import meter, queue_dyn_tariff, seed_push_world
from tests.world.cdrs import seed_cdr
from tests.world.sessions import seed_session
from tests.world.sites import T0


async def _complete(db, session_pk: int) -> None:
    async with db.session() as s:
        cs = await s.get(ChargingSession, session_pk)
        cs.status = SessionStatus.COMPLETED
        cs.end_time = T0 + timedelta(hours=1)
        cs.last_updated = T0 + timedelta(hours=1)
        await enqueue_session_update(cs, s)


async def _evse_status(db, uid: str, status: str) -> int:
    async with db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == uid))
        return await enqueue_evse_status(evse, s, status)


async def _rows(db) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def _wait_parked(db, count: int) -> None:
    async def parked() -> bool:
        return len(await list_messages(db, status="parked")) == count

    await wait_until(parked, f"{count} message(s) parked")


async def _wait_all_closed(db) -> None:
    async def closed() -> bool:
        return all(r.status in (OutboxStatus.DELIVERED, OutboxStatus.SUPERSEDED) for r in await _rows(db))

    await wait_until(closed, "every message delivered or superseded")


def _answered(sim, fragment: str) -> list[tuple[str, int]]:
    return [(r.method, r.answered) for r in sim.log if fragment in r.path]


@pytest.mark.parametrize(
    ("http", "code", "outcome"),
    [
        (200, 1000, "delivered"),
        (201, 1000, "delivered"),
        (200, 2001, "parked"),
        (200, 3000, "retried"),
        (200, 4001, "retried"),
        (200, None, "retried"),
        (400, 2001, "parked"),
        (400, None, "parked"),
        (401, 2000, "retried"),
        (403, 2000, "retried"),
        (403, None, "retried"),
        (404, None, "retried"),
        (404, 3000, "retried"),
        (404, 2003, "parked"),
        (404, 2001, "parked"),
        (405, None, "retried"),
        (408, None, "retried"),
        (409, None, "retried"),
        (410, None, "parked"),
        (413, None, "parked"),
        (415, None, "parked"),
        (422, 2001, "parked"),
        (425, None, "retried"),
        (429, None, "retried"),
        (500, 3000, "retried"),
        (502, None, "retried"),
        (503, None, "retried"),
        (302, None, "retried"),
    ],
)
def test_every_answer_is_retried_parked_or_delivered_deliberately(http: int, code: int | None, outcome: str):
    from ocpi.push.classify import classify  # new in issue 13

    result = classify(http, code, {}, f"PUT x: HTTP {http}", {})
    got = "delivered" if result.ok else "parked" if result.permanent else "retried"
    assert got == outcome


def test_retry_after_is_honoured():
    from ocpi.push.classify import classify

    assert classify(429, None, {"retry-after": "30"}, "x", {}).retry_after == 30.0


async def test_403_for_a_while_then_everything_delivered_nothing_parked(hub, sim):
    cpo, loc, cp, _partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, "S-403")
    sim.misbehave("error", status=403)
    async with hub.db.session() as s:
        await enqueue_session_update(sid, s)
    await meter(hub.db, sid, 10, 2000)
    await meter(hub.db, sid, 20, 3500)
    cdr_pk = await seed_cdr(hub.db, sid, cpo, token.emsp_id, "CDR-403")
    async with hub.db.session() as s:
        await enqueue_cdr(cdr_pk, s)
    await wait_until(lambda: sum(1 for r in sim.log if r.answered == 403) >= 6, "several refused attempts")
    assert await list_messages(hub.db, status="parked") == []
    assert sim.sessions == {} and sim.cdrs == []
    sim.behave()
    await sim.wait_for(
        lambda: len(sim.cdrs) == 1 and len(sim.sessions.get("S-403", {}).get("charging_periods", [])) == 2
    )
    # the two readings queued behind the refused PUT went as one PATCH (coalesced) with both periods
    assert [m for m, answered in _answered(sim, "/sessions/") if answered == 200] == ["PUT", "PATCH"]
    await _wait_all_closed(hub.db)
    assert {r.status for r in await _rows(hub.db)} == {OutboxStatus.DELIVERED}


async def test_404_during_a_deploy_delivered_in_order_and_health_tells_the_truth(hub, sim):
    _cpo, _loc, _cp, partner_id, _token = await seed_push_world(hub, sim)
    assert (await partner_health(hub.db, partner_id))["healthy"]
    sim.misbehave("error", status=404)  # the partner's proxy answers 404 while it deploys
    assert await hub.component.scan_once() == 1  # the location PUT
    assert await _evse_status(hub.db, "LOC1-E1", "CHARGING") == 1
    assert await _evse_status(hub.db, "LOC1-E2", "OUTOFORDER") == 1
    assert await _evse_status(hub.db, "LOC1-E1", "BLOCKED") == 1
    await wait_until(lambda: sum(1 for r in sim.log if r.answered == 404) >= 4, "several 404 answers")
    health = await partner_health(hub.db, partner_id)
    # E1's CHARGING was replaced by its BLOCKED (coalesced: queued after E2's, in order), never tried
    assert health["outbox"]["pending"] == 3 and health["outbox"]["parked"] == 0
    advance_clock(61)  # the deploy takes a while
    await hub.dispatched()
    health = await partner_health(hub.db, partner_id)
    assert not health["healthy"]
    assert any(r.startswith("deliveries failing for ") and "HTTP 404" in r for r in health["reasons"])
    assert await list_messages(hub.db, status="parked") == []
    sim.behave()
    await sim.wait_for(
        lambda: "LOC1" in sim.locations and sim.locations["LOC1"]["evses"][0]["status"] == "BLOCKED"
    )
    delivered = [
        (r.method, r.path.rsplit("/", 1)[-1], (r.body or {}).get("status"))
        for r in sim.log
        if r.answered == 200 and "/locations/" in r.path
    ]
    assert delivered[0][0] == "PUT"
    assert delivered[1:] == [
        ("PATCH", "LOC1-E2", "OUTOFORDER"),
        ("PATCH", "LOC1-E1", "BLOCKED"),
    ]
    assert sim.locations["LOC1"]["evses"][1]["status"] == "OUTOFORDER"
    await _wait_all_closed(hub.db)
    health = await partner_health(hub.db, partner_id)
    assert health["healthy"] and health["reasons"] == [] and health["outbox"]["parked"] == 0


async def _parked_session_with_patches_behind(hub, sim, uid: str) -> int:
    """A session whose first PUT the partner refused (parked), with its meter PATCHes and its end queued behind."""
    cpo, loc, cp, _partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, uid)
    sim.misbehave("error", status=400, count=1, paths=("/sessions/",))
    async with hub.db.session() as s:
        await enqueue_session_update(sid, s)
    await _wait_parked(hub.db, 1)
    await meter(hub.db, sid, 10, 2000)
    await meter(hub.db, sid, 20, 3500)
    await _complete(hub.db, sid)
    await hub.dispatched()
    # nothing of the session overtook its parked PUT
    assert _answered(sim, "/sessions/") == [("PUT", 400)]
    rows = await _rows(hub.db)
    # the two readings and the end, queued behind the parked PUT, are one PATCH (coalesced)
    assert [(r.payload["method"], r.status, r.coalesced) for r in rows] == [
        ("PUT", OutboxStatus.PARKED, 0),
        ("PATCH", OutboxStatus.PENDING, 2),
    ]
    assert rows[0].parked_reason.startswith("refused: PUT ") and "HTTP 400" in rows[0].parked_reason
    return sid


async def test_recovery_resyncs_a_parked_session_as_the_current_session(hub, sim):
    sid = await _parked_session_with_patches_behind(hub, sim, "S-PARK")
    # the partner works again: the first success after the failure (the location's PUT) re-syncs it
    assert await hub.component.scan_once() == 1
    await sim.wait_for(lambda: sim.sessions.get("S-PARK", {}).get("status") == "COMPLETED")
    calls = [(r.method, r.answered, (r.body or {}).get("status")) for r in sim.log if "/sessions/" in r.path]
    assert calls == [("PUT", 400, None), ("PUT", 200, "COMPLETED")]  # never ACTIVE after COMPLETED
    assert sim.sessions["S-PARK"]["kwh"] == 2.5 and len(sim.sessions["S-PARK"]["charging_periods"]) == 2
    await _wait_all_closed(hub.db)
    rows = [r for r in await _rows(hub.db) if r.payload.get("module") == "sessions"]
    assert [r.status for r in rows] == [OutboxStatus.SUPERSEDED] * 2 + [OutboxStatus.DELIVERED]
    assert {r.result["superseded_by"] for r in rows[:2]} == {
        f"message {rows[2].id} (the current state, re-sync)"
    }
    # the push state is what the partner now has: nothing to PATCH until the session changes again
    async with hub.db.session() as s:
        assert await enqueue_session_update(sid, s) == 0
    await hub.dispatched()
    assert len([r for r in sim.log if "/sessions/" in r.path]) == 2


@pytest.fixture
def cli(hub, monkeypatch: pytest.MonkeyPatch):
    """``await cli("outbox", "list")``: the real CLI on the hub's database (exit 0 asserted)."""
    from evhub.cli import app

    monkeypatch.setenv("EVHUB_DATABASE_URL", hub.db.url)
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        # the CLI runs its own event loop (asyncio.run), so it gets a thread of its own
        result = await asyncio.to_thread(runner.invoke, app, list(args))
        assert result.exit_code == 0, result.output
        return result

    return invoke


async def test_outbox_list_by_partner_and_retry_resyncs_instead_of_replaying(hub, sim, sim2, cli):
    await _parked_session_with_patches_behind(hub, sim, "S-RETRY")
    await connect(hub, sim2)  # a second partner, nothing for it
    by_partner = json.loads((await cli("outbox", "list", "--by-partner", "--json")).stdout)
    mine = next(b for b in by_partner if b["name"] == sim.name)
    assert (mine["pending"], mine["parked"]) == (1, 1)  # the PATCHes behind the parked PUT: one, coalesced
    assert mine["parked_reason"].startswith("refused: PUT ") and "HTTP 400" in mine["parked_reason"]
    other = next(b for b in by_partner if b["name"] == sim2.name)
    assert (other["pending"], other["parked"]) == (0, 0)
    rows = json.loads(
        (await cli("outbox", "list", "--partner", sim.name, "--status", "parked", "--json")).stdout
    )
    assert len(rows) == 1 and rows[0]["partner"] == sim.name and rows[0]["summary"].startswith("PUT sessions")
    assert "HTTP 400" in rows[0]["parked_reason"]
    assert json.loads((await cli("outbox", "list", "--partner", sim2.name, "--json")).stdout) == []
    table = (await cli("outbox", "list", "--partner", sim.name)).output
    assert "Outbox by partner" in table and "Sim" in table and "Other" not in table
    health = json.loads((await cli("partners", "health", sim.name, "--json")).stdout)
    assert not health["healthy"] and health["reasons"][0].startswith(
        "1 message(s) parked, the newest: refused"
    )
    assert "NOT healthy" in (await cli("partners", "health", sim.name)).output
    # `outbox retry` of the parked PUT sends the session as it is now, not the stored (ACTIVE) PUT
    out = (await cli("outbox", "retry", str(rows[0]["id"]))).output
    assert "1 object(s) re-synced" in out
    await sim.wait_for(lambda: sim.sessions.get("S-RETRY", {}).get("status") == "COMPLETED")
    calls = [(r.method, r.answered, (r.body or {}).get("status")) for r in sim.log if "/sessions/" in r.path]
    assert calls == [("PUT", 400, None), ("PUT", 200, "COMPLETED")]
    await _wait_all_closed(hub.db)


async def test_parked_location_put_evse_patches_never_reach_the_partner_before_it(hub, sim):
    cpo, _loc, _cp, partner_id, _token = await seed_push_world(hub, sim)
    sim.misbehave("error", status=400, count=1, paths=("/locations/",))
    assert await hub.component.scan_once() == 1
    await _wait_parked(hub.db, 1)
    assert await _evse_status(hub.db, "LOC1-E1", "CHARGING") == 1
    assert await _evse_status(hub.db, "LOC1-E2", "OUTOFORDER") == 1
    await hub.dispatched()
    assert _answered(sim, "/locations/") == [("PUT", 400)]  # no PATCH for a location the partner never got
    health = await partner_health(hub.db, partner_id)
    assert not health["healthy"] and any("1 message(s) parked" in r for r in health["reasons"])
    # the partner accepts something else (a tariff): the location goes out whole, with the current statuses
    await queue_dyn_tariff(hub.db, cpo, 1, 0.25)
    await sim.wait_for(lambda: "LOC1" in sim.locations)
    assert [e["status"] for e in sim.locations["LOC1"]["evses"]] == ["CHARGING", "OUTOFORDER"]
    assert _answered(sim, "/locations/") == [("PUT", 400), ("PUT", 200)]
    await _wait_all_closed(hub.db)
    # the push state matches what the partner has: the next change is a PATCH again
    assert await _evse_status(hub.db, "LOC1-E1", "AVAILABLE") == 1
    await sim.wait_for(lambda: sim.locations["LOC1"]["evses"][0]["status"] == "AVAILABLE")
    assert _answered(sim, "/locations/")[-1] == ("PATCH", 200)
    await _wait_all_closed(hub.db)
    health = await partner_health(hub.db, partner_id)
    assert health["healthy"] and health["reasons"] == []


async def test_resync_order_tariffs_locations_sessions_cdrs(hub, sim, cli):
    cpo, loc, cp, _partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, "S-ORDER")
    cdr_pk = await seed_cdr(hub.db, sid, cpo, token.emsp_id, "CDR-ORDER")
    sim.misbehave("error", status=422)  # refuses everything
    async with hub.db.session() as s:
        await enqueue_cdr(cdr_pk, s)
        await enqueue_session_update(sid, s)
    assert await hub.component.scan_once() == 1  # the location
    await queue_dyn_tariff(hub.db, cpo, 1, 0.25)
    await _wait_parked(hub.db, 4)
    sim.behave()
    out = (await cli("partners", "resync", sim.name)).output
    assert "3 object(s) queued again as their current state" in out
    # the CDR POST goes back as it is: released here, or already by the scheduled scanner's probe (it releases a
    # given-up partner's oldest message on its own, and may run between the parking and this command)
    assert re.search(r"\b[01] message\(s\) queued again", out), out
    await sim.wait_for(lambda: len(sim.cdrs) == 1 and "S-ORDER" in sim.sessions and "LOC1" in sim.locations)
    await sim.wait_for(lambda: "DYN" in sim.tariffs)
    await _wait_all_closed(hub.db)
    rows = await _rows(hub.db)
    # the CDR's POST is released as it is (a CDR is immutable); the others are queued afresh, tariffs first
    assert [(r.payload["module"], r.status) for r in rows[:4]] == [
        ("cdrs", OutboxStatus.DELIVERED),
        ("sessions", OutboxStatus.SUPERSEDED),
        ("locations", OutboxStatus.SUPERSEDED),
        ("tariffs", OutboxStatus.SUPERSEDED),
    ]
    assert [(r.payload["module"], r.status) for r in rows[4:]] == [
        ("tariffs", OutboxStatus.DELIVERED),
        ("locations", OutboxStatus.DELIVERED),
        ("sessions", OutboxStatus.DELIVERED),
    ]
    assert all(r.payload["resync"] for r in rows[4:]) and rows[0].payload["resync"]


async def test_backlog_metric_per_partner(hub, sim, sim2):
    await seed_push_world(hub, sim)
    await connect(hub, sim2)
    sim.misbehave("error", status=503)
    assert await hub.component.scan_once() == 2  # the location to each partner
    await sim2.wait_for(lambda: "LOC1" in sim2.locations)
    assert await _evse_status(hub.db, "LOC1-E1", "CHARGING") == 2
    await sim2.wait_for(lambda: sim2.locations["LOC1"]["evses"][0]["status"] == "CHARGING")
    await _wait_parked(hub.db, 0)

    async def backlog_is(name: str, value: float) -> bool:
        await refresh_metrics(hub.db)
        return REGISTRY.get_sample_value("evhub_outbox_backlog", {"partner": name}) == value

    await wait_until(lambda: backlog_is(sim.name, 2.0), "the failing partner's backlog is 2")
    await wait_until(lambda: backlog_is(sim2.name, 0.0), "the working partner's backlog is 0")
    sim.behave()
    await wait_until(lambda: backlog_is(sim.name, 0.0), "the recovered partner's backlog is 0")


async def test_the_scanner_resyncs_a_partner_that_works_again(hub, sim):
    """The sender's trigger was lost (say the process stopped right after a success): the scanner re-syncs."""
    from kernel.models.roaming import OcpiPartner
    from kernel.timeutil import utcnow

    await _parked_session_with_patches_behind(hub, sim, "S-SCAN")
    partner_id = int((await _rows(hub.db))[0].destination)
    async with hub.db.session() as s:
        (await s.get(OcpiPartner, partner_id)).last_success_at = utcnow()
    assert await hub.component.scan_once() >= 2  # the session re-synced, the location queued
    await sim.wait_for(lambda: sim.sessions.get("S-SCAN", {}).get("status") == "COMPLETED")
    await _wait_all_closed(hub.db)


async def test_an_automatic_resync_is_not_repeated_on_what_the_partner_refuses_again(hub, sim, cli):
    cpo, loc, cp, _partner_id, token = await seed_push_world(hub, sim)
    sid = await seed_session(hub.db, cpo, cp, loc, token, "S-NO")
    sim.misbehave("error", status=400, paths=("/sessions/",))  # every session push refused
    async with hub.db.session() as s:
        await enqueue_session_update(sid, s)
    await _wait_parked(hub.db, 1)
    assert await hub.component.scan_once() == 1  # the location is accepted: a re-sync, refused again
    await wait_until(lambda: len(_answered(sim, "/sessions/")) == 2, "the re-synced PUT refused")
    await _wait_parked(hub.db, 1)
    await queue_dyn_tariff(hub.db, cpo, 1, 0.25)  # another success: no third attempt by itself
    await sim.wait_for(lambda: "DYN" in sim.tariffs)
    assert await hub.component.scan_once() == 0
    await hub.dispatched()
    assert len(_answered(sim, "/sessions/")) == 2
    [parked] = await list_messages(hub.db, status="parked")
    assert parked.parked_reason.startswith("refused: PUT ")
    # an operator's re-sync does send it again, and once the partner takes it, it is delivered
    sim.behave()
    assert "1 object(s) queued again" in (await cli("partners", "resync", sim.name)).output
    await sim.wait_for(lambda: "S-NO" in sim.sessions)
    await _wait_all_closed(hub.db)


async def test_a_partner_down_longer_than_max_attempts_gets_everything_when_back(hub, sim):
    cpo, loc, cp, partner_id, token = await seed_push_world(hub, sim)
    hub.dispatcher.max_attempts = 3  # days of retries, in short
    sid = await seed_session(hub.db, cpo, cp, loc, token, "S-LONG")
    sim.misbehave("error", status=503)
    async with hub.db.session() as s:
        await enqueue_session_update(sid, s)
    assert await hub.component.scan_once() == 1  # the location
    await _wait_parked(hub.db, 2)
    await meter(hub.db, sid, 10, 2000)  # queued behind the given-up PUT
    for row in await list_messages(hub.db, status="parked"):
        assert (
            row.parked_reason.startswith("gave up after 3 attempts over ") and "HTTP 503" in row.parked_reason
        )
    health = await partner_health(hub.db, partner_id)
    assert not health["healthy"] and health["outbox"]["parked"] == 2
    sim.behave()
    await hub.dispatched()
    assert sim.sessions == {} and sim.locations == {}  # nothing tries by itself
    # the scanner releases one given-up message as a probe; its success re-syncs the rest
    assert await hub.component.scan_once() >= 1
    await sim.wait_for(lambda: sim.sessions.get("S-LONG", {}).get("kwh") == 1.0 and "LOC1" in sim.locations)
    await _wait_all_closed(hub.db)
    assert (await partner_health(hub.db, partner_id))["healthy"]


async def test_a_partner_that_lost_a_location_gets_it_whole_again(hub, sim):
    """A PATCH answered 404 with OCPI 2003 (unknown location: the partner's OCPI application says so) is parked,
    and the re-sync sends the whole location with its current statuses."""
    cpo, *_ = await seed_push_world(hub, sim)
    assert await hub.component.scan_once() == 1
    await sim.wait_for(lambda: "LOC1" in sim.locations)
    sim.locations.clear()  # the partner lost its data
    assert await _evse_status(hub.db, "LOC1-E1", "CHARGING") == 1
    await _wait_parked(hub.db, 1)
    [parked] = await list_messages(hub.db, status="parked")
    assert parked.summary.startswith("PATCH locations") and "HTTP 404 OCPI 2003" in parked.parked_reason
    # the partner accepts something else: the location is re-synced
    await queue_dyn_tariff(hub.db, cpo, 1, 0.25)
    await sim.wait_for(lambda: "LOC1" in sim.locations)
    assert sim.locations["LOC1"]["evses"][0]["status"] == "CHARGING"
    await _wait_all_closed(hub.db)
