"""The scenarios, in one run against one hub: a healthy baseline, ``kill -9`` of ``evhub serve`` under load
(K times), partner A down / 500 / slow / 404 while partner B stays healthy, PostgreSQL stopped and started,
SMTP down then 451; then the chargers finish their sessions, the hub drains, and :mod:`faults.count` counts.

:class:`Plan` holds the sizes; :func:`long_plan` is ``make faults``, :func:`short_plan` the test suite's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import kernel.models  # noqa: F401  (every table)
from evhub import provisioning as prov
from faults import count
from faults.chargers import CountingCharger, Fleet
from faults.cluster import STEP_TIMEOUT_S, PgCluster
from faults.hub import START_TIMEOUT_S, Hub
from faults.sinks import MailSink, Partner
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.ports import free_port
from ocpi.partners import invite_partner
from simulators.chargepoints.charger import ChargerSpec

DATA = Path(prov.__file__).resolve().parent / "demo_data"
PASSWORD = "faults-charger-password"
PARTNER_FAULTS = ("down", "error", "slow", "notfound")


@dataclass
class Plan:
    chargers: int = 200
    kills: int = 2
    acceleration: float = 30.0
    baseline_s: float = 60.0
    between_kills_s: float = 20.0
    partner_fault_s: float = 30.0
    partner_slow_s: float = 30.0
    recover_s: float = 10.0
    pg_down_s: float = 60.0
    smtp_down_s: float = 30.0
    smtp_451_s: float = 30.0
    drain_s: float = 180.0
    finish_s: float = 120.0  # the chargers' last sessions end within this after the faults
    connect_s: float = 90.0
    p95_factor: float = 3.0
    p95_floor_s: float = 1.0
    baseline_cdrs: int = 20  # the baseline runs on (up to baseline_max_s) until this many of B's CDRs arrived
    baseline_max_s: float = 120.0
    strict_ocpi: bool = False
    hostile: bool = True  # then schemathesis and the OCPP frame fuzzer at length (faults.hostile)
    schema_examples: int = 20
    fuzz_examples: int = 500
    hostile_timeout_s: float = 900.0
    partner_faults: tuple[str, ...] = PARTNER_FAULTS


def long_plan(chargers: int = 200, kills: int = 2) -> Plan:
    return Plan(chargers=chargers, kills=kills)


def short_plan() -> Plan:
    return Plan(
        chargers=6, kills=1, acceleration=120.0, baseline_s=6.0, between_kills_s=3.0, partner_fault_s=3.0,
        partner_slow_s=3.0, recover_s=1.0, pg_down_s=4.0, smtp_down_s=2.0, smtp_451_s=2.0, drain_s=60.0,
        connect_s=30.0, baseline_cdrs=3, baseline_max_s=40.0, hostile=False, finish_s=60.0,
    )  # fmt: skip


def bound_s(plan: Plan) -> float:
    """The longest the run may take when every phase takes its whole bound: a caller's timeout above this
    means a timeout is a hang, not a slow box."""
    faults = len(plan.partner_faults) * (plan.partner_fault_s + plan.recover_s)
    starts = (1 + plan.kills) * START_TIMEOUT_S + 5 * STEP_TIMEOUT_S  # initdb, start, createdb, stop, start
    return (
        plan.connect_s + plan.baseline_max_s + plan.recover_s + plan.kills * plan.between_kills_s + faults
        + plan.pg_down_s + plan.recover_s + plan.smtp_down_s + plan.smtp_451_s + plan.finish_s + plan.drain_s
        + starts + (plan.hostile_timeout_s if plan.hostile else 0.0)
    )  # fmt: skip


@dataclass
class Timeline:
    events: list[tuple[float, str]] = field(default_factory=list)
    windows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def note(self, what: str) -> None:
        self.events.append((time.time(), what))
        print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


def _location(n: int) -> dict[str, Any]:
    loc = json.loads((DATA / "locations.json").read_text())[0]
    template = loc["evses"][0]
    loc["id"], loc["name"] = "FAULTS-SITE", "Fault suite site"
    loc["evses"] = [{**template, "uid": f"F-{i:04d}", "evse_id": f"NL*AMP*E{i:04d}*1"} for i in range(n)]
    return loc


def _tariff() -> dict[str, Any]:
    return next(t for t in json.loads((DATA / "tariffs.json").read_text()) if t["id"] == "AMS-TOD")


async def provision(db: Database, n: int, fleet_tokens: list[str]) -> None:
    await upgrade(db)
    shared = prov.hash_password(PASSWORD)
    async with db.session() as s:
        await prov.add_party(s, "NL", "AMP", "CPO", "AmsterPower")
        await prov.add_party(s, "NL", "EVH", "EMSP", "evhub Fleet Services")
        await prov.import_location(s, _location(n))
        await prov.import_tariff(s, _tariff())
        with mock.patch.object(prov, "hash_password", lambda _p: shared):  # one Argon2 hash for all
            for i in range(n):
                await prov.add_charger(s, f"FLT-{i:04d}", password=PASSWORD, location="FAULTS-SITE",
                                       evse_uids=[f"F-{i:04d}"])  # fmt: skip
        for uid in fleet_tokens:
            await prov.add_token(s, prov.TokenSpec(uid=uid, issuer_party="NL*EVH", driver_name=f"Driver {uid}",
                                                   driver_email=f"{uid.lower()}@drivers.example"))  # fmt: skip


async def _register(db: Database, hub: Hub, partner: Partner, uids: list[str]) -> None:
    cc, pid = partner.sim.country_code, partner.sim.party_id
    invitation = await invite_partner(db, hub.public_url, partner.name, roles=[(cc, pid, "EMSP")])
    await partner.start()
    await partner.sim.register(invitation.versions_url, invitation.token_a)
    for uid in uids:
        (await partner.sim.push_token(partner.sim.make_token(uid))).raise_for_status()


async def _hold(seconds: float, hub: Hub, tl: Timeline) -> None:
    """Wait ``seconds`` while the load runs; a hub that died by itself is a finding (it is restarted)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if not hub.alive():
            tl.note("evhub serve EXITED BY ITSELF; restarting it")
            tl.windows.setdefault("hub_crash", []).append((time.time(), time.time()))
            await hub.start()


async def _baseline(plan: Plan, db: Database, hub: Hub, b: Partner, tl: Timeline) -> None:
    """The healthy baseline: ``baseline_s``, and on (up to ``baseline_max_s``) until ``baseline_cdrs`` of partner
    B's CDRs created in it were delivered, so its p95 is measured, not assumed."""
    start = time.time()
    await _hold(plan.baseline_s, hub, tl)
    deadline = time.monotonic() + max(0.0, plan.baseline_max_s - plan.baseline_s)
    while True:
        created = await count.cdrs_created_since(db, start, "B")
        got = sum(1 for uid in created if uid in b.accepted())
        if got >= plan.baseline_cdrs or time.monotonic() >= deadline:
            tl.note(
                f"baseline: {got} of partner B's CDRs created and delivered in {time.time() - start:.0f} s"
            )
            return
        await _hold(1.0, hub, tl)


async def _window(tl: Timeline, name: str, body: Callable[[], Awaitable[None]]) -> None:
    start = time.time()
    await body()
    tl.windows.setdefault(name, []).append((start, time.time()))


async def run(plan: Plan, workdir: Path | None = None) -> dict[str, Any]:
    """Run every scenario; returns the figures (and prints them)."""
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # the partners' cut requests (kill -9)
    logging.getLogger("simulators.chargepoints.charger").setLevel(logging.CRITICAL)  # counted in SimStats
    asyncio.get_running_loop().set_exception_handler(_quiet)
    work = workdir or Path(tempfile.mkdtemp(prefix="evhub-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    tl = Timeline()
    cluster = PgCluster()  # its own temporary folder (readable by the server's user when we are root)
    cluster.create()
    tl.note(f"PostgreSQL 15 cluster of its own on 127.0.0.1:{cluster.port} ({cluster.folder})")
    tl.note(f"work folder {work} (evhub.log: the hub's log; kept)")
    sink = MailSink()
    await sink.start()
    a, b = Partner("Partner A", "DE", "PAA"), Partner("Partner B", "DE", "PBB")
    a.slow_s = plan.partner_slow_s
    hub = Hub(cluster.url, free_port(), free_port(), sink.url, work / "evhub.log")
    db = Database(cluster.url)
    rng = random.Random(15)
    tokens = {"A": [f"A{i:07d}" for i in range(8)], "B": [f"B{i:07d}" for i in range(8)],
              "F": [f"F{i:07d}" for i in range(8)]}  # fmt: skip
    fleet: Fleet | None = None
    try:
        await provision(db, plan.chargers, tokens["F"])
        took = await hub.start()
        tl.note(f"evhub serve up in {took:.1f} s (OCPP :{hub.ocpp_port}, HTTP :{hub.http_port})")
        await _register(db, hub, a, tokens["A"])
        await _register(db, hub, b, tokens["B"])
        tl.note("partners A and B registered through the OCPI 2.2.1 handshake, their tokens pushed")
        every = tokens["A"] + tokens["B"] + tokens["F"]
        specs = [
            ChargerSpec(
                identity=f"FLT-{i:04d}",
                password=PASSWORD,
                tokens=rng.sample(every, len(every)),
                max_power_w=22000.0,
                idle_s=(60.0, 300.0),
                energy_wh=(1500.0, 4000.0),
            )
            for i in range(plan.chargers)
        ]
        fleet = Fleet(specs, f"ws://127.0.0.1:{hub.ocpp_port}/ocpp", plan.acceleration)
        fleet.start()
        tl.note(f"{plan.chargers} chargers running sessions ({plan.acceleration:g}x simulated time)")
        deadline = time.monotonic() + plan.connect_s
        while fleet.online() < plan.chargers and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        tl.note(
            f"{fleet.online()} of {plan.chargers} chargers online (503s of the hub's admission control retried)"
        )

        await _window(tl, "baseline", lambda: _baseline(plan, db, hub, b, tl))
        await _hold(plan.recover_s, hub, tl)  # the baseline's last CDRs are delivered before the first fault
        for k in range(plan.kills):
            tl.note(f"kill -9 evhub serve ({k + 1}/{plan.kills}), {fleet.online()} chargers online")

            async def killed() -> None:
                hub.kill()
                took = await hub.start()
                tl.note(f"  restarted in {took:.1f} s")
                await _hold(plan.between_kills_s, hub, tl)

            await _window(tl, "kill", killed)
        for mode in plan.partner_faults:
            tl.note(f"partner A {mode} for {plan.partner_fault_s:g} s, partner B healthy")
            await a.set_mode(mode)
            await _window(tl, "partner_fault", lambda: _hold(plan.partner_fault_s, hub, tl))
            await a.set_mode("healthy")
            await _window(tl, "recover", lambda: _hold(plan.recover_s, hub, tl))
        tl.note(f"PostgreSQL stopped for {plan.pg_down_s:g} s")
        await db.dispose()

        async def pg_down() -> None:
            cluster.stop()
            await _hold(plan.pg_down_s, hub, tl)
            cluster.start()

        await _window(tl, "pg_down", pg_down)
        tl.note("PostgreSQL started again")
        await _hold(plan.recover_s, hub, tl)
        tl.note(f"SMTP down for {plan.smtp_down_s:g} s, then 451 for {plan.smtp_451_s:g} s")
        await sink.set_mode("down")
        await _window(tl, "smtp_fault", lambda: _hold(plan.smtp_down_s, hub, tl))
        await sink.set_mode("451")
        await _window(tl, "smtp_fault", lambda: _hold(plan.smtp_451_s, hub, tl))
        await sink.set_mode("healthy")
        tl.note("everything healthy; chargers finish their sessions")
        unfinished = await fleet.finish(timeout=plan.finish_s)
        ledgers = {c.spec.identity: c.ledger for c in fleet.chargers}
        tl.note(f"chargers done ({unfinished} did not finish); draining the hub (up to {plan.drain_s:g} s)")
        stored = await _drain(db, plan, ledgers, a, b, sink)
        figures = _figures(plan, tl, fleet.chargers, stored, a, b, sink, hub, unfinished)
        tl.note("done")
        return figures
    finally:
        if fleet is not None:
            for t in fleet.tasks:
                t.cancel()
        hub.stop()
        for closing in (a.stop(), b.stop(), sink.stop(), db.dispose()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closing, 10)
        cluster.destroy()


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A charger's in-flight call whose link was cut leaves a future nobody awaits any more: not news."""
    if isinstance(context.get("exception"), ConnectionError):
        return
    loop.default_exception_handler(context)


def _due(stored: count.Stored, prefix: str) -> dict[str, float]:
    return {uid: created for _i, _s, uid, token, created in stored.cdrs if token.startswith(prefix)}


def _mail_due(stored: count.Stored) -> dict[str, float]:
    return {f"<receipt.{uid}@evhub>": t for uid, t in _due(stored, "F").items()}


async def _drain(
    db: Database, plan: Plan, ledgers: Any, a: Partner, b: Partner, sink: MailSink
) -> count.Stored:
    """Until every finished session has its CDR and every CDR reached its destination (or the time is up)."""
    deadline = time.monotonic() + plan.drain_s
    finished = sum(len(led.stops_acked) for led in ledgers.values())
    while True:
        stored = await count.load(db)
        arrived = (
            all(k in a.accepted() for k in _due(stored, "A"))
            and all(k in b.accepted() for k in _due(stored, "B"))
            and all(k in sink.received for k in _mail_due(stored))
        )
        if (len(stored.cdrs) >= finished and arrived) or time.monotonic() > deadline:
            return stored
        await asyncio.sleep(1.0)


def _figures(plan: Plan, tl: Timeline, chargers: list[CountingCharger], stored: count.Stored, a: Partner,
             b: Partner, sink: MailSink, hub: Hub, unfinished: int) -> dict[str, Any]:  # fmt: skip
    ledgers = {c.spec.identity: c.ledger for c in chargers}
    lines = count.charger_lines(ledgers, stored)
    due_a, due_b, due_mail = _due(stored, "A"), _due(stored, "B"), _mail_due(stored)
    waiting = count.queued([*due_a, *due_b, *due_mail], stored.pending)
    for what, due, got, strict in (
        ("OCPI CDRs to partner A (faulty)", due_a, a.accepted(), plan.strict_ocpi),
        ("OCPI CDRs to partner B (healthy)", due_b, b.accepted(), plan.strict_ocpi),
        ("receipt e-mails", due_mail, sink.received, True),
    ):
        lines.append(count.destination_line(what, due, got, strict=strict, waiting=waiting))
    base = [x for s, e in tl.windows.get("baseline", []) for x in count.latencies(due_b, b.accepted(), s, e)]
    during = [
        x for s, e in tl.windows.get("partner_fault", []) for x in count.latencies(due_b, b.accepted(), s, e)
    ]
    base_p95, fault_p95 = count.p95(base), count.p95(during)
    allowed = plan.p95_factor * max(base_p95 or 0.0, plan.p95_floor_s)
    problems = [f"{ln.what}: {ln.lost} lost" for ln in lines if ln.lost] + [
        f"{ln.what}: {ln.duplicated} duplicated" for ln in lines if ln.duplicated
    ]
    if fault_p95 is not None and fault_p95 > allowed:
        problems.append(f"partner B's p95 {fault_p95:.2f} s while A failed > {allowed:.2f} s allowed")
    if len(base) < plan.baseline_cdrs:
        problems.append(
            f"partner B's baseline had {len(base)} CDRs (< {plan.baseline_cdrs}): no p95 to compare"
        )
    if not during:
        problems.append("no CDR of partner B was delivered while partner A failed: nothing to compare")
    if unfinished:
        problems.append(f"{unfinished} chargers did not finish their sessions")
    if "hub_crash" in tl.windows:
        problems.append(f"evhub serve exited by itself {len(tl.windows['hub_crash'])} time(s)")
    sent = sum(len(led.readings_sent) for led in ledgers.values())
    print()
    print(count.render(lines))
    print(
        f"\npartner B's CDR latency p95: baseline {_s(base_p95)} ({len(base)} CDRs), while A failed "
        f"{_s(fault_p95)} ({len(during)} CDRs); allowed {plan.p95_factor:g} x max(baseline, {plan.p95_floor_s:g} s)"
        f" = {allowed:.2f} s"
    )
    print(
        f"chargers: {len(ledgers)}, sessions started {sum(len(x.starts_sent) for x in ledgers.values())}, "
        f"meter readings sent {sent}, connects {sum(c.stats.connects for c in chargers)}, "
        f"failed connection attempts (503s, refused, cut) {sum(c.stats.errors for c in chargers)}, CALLERRORs retried {sum(x.call_errors for x in ledgers.values())}; "
        f"kill -9: {hub.kills}; partner A got {len(a.deliveries)} CDR requests; SMTP refused {sink.refused} (451)"
    )
    print("outbox rows: " + ", ".join(f"{k} {v}" for k, v in sorted(stored.outbox.items())))
    for reason in stored.parked[:5]:
        print(f"  parked: {reason}")
    print("faults: " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
    return {"plan": asdict(plan), "lines": count.as_dict(lines), "baseline_p95": base_p95,
            "fault_p95": fault_p95, "allowed_p95": allowed, "problems": problems,
            "outbox": dict(stored.outbox), "parked": stored.parked}  # fmt: skip


def _s(value: float | None) -> str:
    return f"{value:.2f} s" if value is not None else "-"
