"""Property e (issue 12 item 6 (e), DB level with the in-process OCPI network): the tariff a partner held at
each instant is the tariff charged.

A hub (the OCPI component, its outbox dispatcher) and a simulated eMSP on one
:class:`~tests.ocpi._network.InProcessNetwork`, over the demo pricing network (AMS-TOD on AMS-02-1, its grid
rules in zone NL-NH). A random sequence of steps moves the hub's pinned clock on, imports new versions of
AMS-TOD (some back-dated: a ``start_date_time`` before the import) and records grid load samples (late ones
included) that publish grid versions; after each change the scanner and the outbox run at once and every
Tariff PUT the eMSP receives is stamped with the hub's clock when that step began (a change and its delivery
take a few milliseconds of the running clock; a version applying from before its step is what must not be). Ended sessions on AMS-02-1 within that time (the CPO's price lock on or off) are then rated.

Invariant: for every charge of every CDR (its explanation, per charging period) the tariff version charged is
the last version the partner had received for that tariff id at the period's start (at the session's start
under price lock), and it is one of the CDR's ``tariffs``; the versions the partner receives per tariff id are
strictly increasing (never a superseded version after a newer one)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from hypothesis import event, given, note
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from sqlalchemy import select

from evhub import provisioning as prov
from kernel.clock import CLOCK, pinned
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Cdr, TariffPolicy, TariffVersion
from kernel.outbox import BackoffPolicy, OutboxDispatcher
from kernel.settings import Settings
from kernel.timeutil import format_rfc3339, parse_datetime
from ocpi.component import OcpiComponent
from simulators.emsp import EmspSimulator
from tariffs.dynamic import attach_rules, record_load
from tariffs.rating import rate_pending
from tests.conftest import TEST_CLOCK_START, clear_tables
from tests.ocpi._helpers import connect
from tests.ocpi._network import InProcessNetwork
from tests.ocpi.conftest import RunningHub
from tests.world.demo_network import demo_json, seed_pricing_network
from tests.world.sessions import seed_ended_session

from .strategies import budget, to_json

T0 = TEST_CLOCK_START  # 12:00 in Amsterdam: AMS-TOD's day price, far from its 23:00/07:00 switches
TARIFF, ZONE, EVSE_UID = "AMS-TOD", "NL-NH", "AMS-02-1"

# ------------------------------------------------------------------------------------------------ steps

waits = st.tuples(st.just("wait"), st.integers(1, 25))
loads = st.tuples(st.just("load"), st.integers(0, 10), st.sampled_from([10, 25, 50, 85, 95]))
imports = st.tuples(st.just("import"), st.integers(30, 60), st.sampled_from([None, None, 0, 3, 20]))


@dataclass(frozen=True)
class Case:
    steps: list[tuple[Any, ...]]
    sessions: list[tuple[int, int]]  # (start minute from T0, duration in minutes)
    price_lock: bool


@st.composite
def cases(draw: st.DrawFn) -> Case:
    steps = draw(st.lists(st.one_of(waits, waits, loads, imports), min_size=3, max_size=10))
    span = sum(s[1] for s in steps if s[0] == "wait")
    # Sessions across the changes mostly (a change within a session is what the property is about).
    sessions = draw(
        st.lists(st.tuples(st.integers(0, span + 5), st.integers(3, 60)), min_size=1, max_size=3, unique=True)
    )
    return Case(steps, sessions, draw(st.integers(0, 2)) == 0)


# ------------------------------------------------------------------------------------------------ world


@dataclass
class Received:
    """A Tariff PUT the eMSP received: when (hub clock) and what."""

    at: datetime
    tariff_id: str
    body: dict[str, Any]


@dataclass
class World:
    db: Database
    running: RunningHub
    sim: EmspSimulator
    received: list[Received] = field(default_factory=list)
    step: datetime = T0  # when the present step began

    async def deliver(self) -> None:
        """The scanner and the outbox, right after a change; every new Tariff PUT is stamped with the instant its
        step began (the change and its delivery take a few milliseconds of the running clock)."""
        seen = len(self.sim.log)
        await self.running.component.scan_once()
        await self.running.dispatcher.drain()
        for r in self.sim.log[seen:]:
            if r.method == "PUT" and "/tariffs/" in r.path:
                self.received.append(Received(self.step, r.path.rsplit("/", 1)[-1], to_json(r.body)))


@asynccontextmanager
async def world(url: str) -> AsyncIterator[World]:
    """The demo pricing network with AMS-TOD's grid rules, a hub and a registered eMSP, in one process."""
    db = Database(url)
    network = InProcessNetwork()
    try:
        await clear_tables(db)
        await seed_pricing_network(db)
        async with db.session() as s:
            cpo = await prov.find_party(s, "NL*AMP", prov.PartyRole.CPO)
            await attach_rules(s, ZONE, cpo.id, TARIFF, demo_json("grid_rules.json"))
        app = FastAPI()
        h = Hub(
            settings=Settings(database_url=db.url, public_url="http://hub.test"),
            db=db,
            node_name="p",
            app=app,
        )
        dispatcher = OutboxDispatcher(
            db, batch_size=50, lease_seconds=5, backoff=BackoffPolicy(base=0.05, cap=0.4, jitter=0)
        )
        component = OcpiComponent(
            command_timeout=2, authorize_timeout=1.0, dispatcher=dispatcher, transport=network
        )
        component.install(h)
        await component.start(h)
        network.serve("hub.test", app)
        sim = EmspSimulator(
            country_code="DE", party_id="EMS", name="Sim eMSP", hub_timeout=30, transport=network
        )
        sim.url = network.serve("emsp-de.test", sim.app)
        running = RunningHub(db, h, component, dispatcher, "http://hub.test", network)
        try:
            await connect(running, sim)
            yield World(db, running, sim)
        finally:
            await sim.stop()
            await component.stop()
    finally:
        await db.dispose()


async def _import(w: World, cents: int, back: int | None) -> None:
    """A new version of AMS-TOD (day energy price ``cents``/kWh), stored now, its hooks run as the API does;
    with ``start_date_time`` ``back`` minutes ago when ``back`` is set (back-dated: D5 applies it from now)."""
    body = demo_json("tariffs.json")[0]
    body["elements"][2]["price_components"][0]["price"] = Decimal(cents) / 100
    body["last_updated"] = format_rfc3339(CLOCK.now())
    if back is not None:
        body["start_date_time"] = format_rfc3339(CLOCK.now() - timedelta(minutes=back))
    async with w.db.session() as s:
        row, created = await prov.import_tariff(s, body)
        if created:
            for hook in w.running.hooks.tariff:
                await hook(s, row)


async def run(url: str, case: Case) -> tuple[list[Received], list[Cdr], bool, dict[str, int]]:
    """Play ``case``; (the PUTs received, the CDRs, whether the price lock was on, the stored version number
    of each version's :func:`identity`)."""
    with pinned(T0):
        async with world(url) as w:
            if case.price_lock:
                async with w.db.session() as s:
                    cpo = await prov.find_party(s, "NL*AMP", prov.PartyRole.CPO)
                    s.add(TariffPolicy(cpo_id=cpo.id, tariff_id=None, price_lock=True))
            await w.deliver()  # what the partner holds from the start
            minute = 0
            for step in case.steps:
                if step[0] == "wait":
                    minute += step[1]
                    CLOCK.pin(T0 + timedelta(minutes=minute))
                    continue
                w.step = CLOCK.now()
                if step[0] == "load":
                    at = CLOCK.now() - timedelta(minutes=step[1])  # a late sample when step[1] > 0
                    await record_load(w.db, ZONE, at, Decimal(step[2]), w.running.hooks.tariff)
                else:
                    await _import(w, step[1], step[2])
                await w.deliver()
            end = CLOCK.now()
            for i, (start, minutes) in enumerate(case.sessions):
                await seed_ended_session(
                    w.db, EVSE_UID, T0 + timedelta(minutes=start), minutes, str(minutes / 2), uid=f"s{i}"
                )
            last_end = max(T0 + timedelta(minutes=s + m) for s, m in case.sessions)
            CLOCK.pin(max(end, last_end) + timedelta(hours=1))  # past every grace
            assert await rate_pending(w.db, ()) == len(case.sessions)
            async with w.db.session() as s:
                cdrs = list((await s.scalars(select(Cdr).order_by(Cdr.id))).all())
                versions = (await s.scalars(select(TariffVersion))).all()
            if currently_in_test_context():
                event(f"{len(versions)} versions, {len(w.received)} PUTs")
            numbers = {identity(v.data): v.version for v in versions}
            return w.received, cdrs, case.price_lock, numbers


# ------------------------------------------------------------------------------------------------ check


def identity(doc: dict[str, Any]) -> str:
    """What makes a tariff version itself, whatever start it is announced with: id, last_updated, content."""
    key = {k: v for k, v in doc.items() if k not in ("start_date_time", "end_date_time")}
    key["last_updated"] = format_rfc3339(parse_datetime(doc["last_updated"]))
    return repr(_canonical(to_json(key)))


def _canonical(value: Any) -> Any:
    """Numbers by value (0.40 == 0.4), keys sorted, empty and absent fields alike."""
    if isinstance(value, dict):
        return sorted((k, _canonical(v)) for k, v in value.items() if v not in (None, [], {}))
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(Decimal(str(value)).normalize())
    return value


def label(doc: dict[str, Any]) -> str:
    """The engine's version label of a tariff document (its start, else its last_updated)."""
    return format_rfc3339(parse_datetime(doc.get("start_date_time") or doc["last_updated"]))


def held(received: list[Received], tariff_id: str, at: datetime) -> dict[str, Any] | None:
    """The last version of ``tariff_id`` the partner had received at ``at``."""
    out = None
    for r in received:
        if r.tariff_id == tariff_id and r.at <= at:
            out = r.body
    return out


def check(received: list[Received], cdrs: list[Cdr], price_lock: bool, numbers: dict[str, int]) -> None:
    order: dict[str, list[int]] = {}
    for r in received:
        order.setdefault(r.tariff_id, []).append(numbers[identity(r.body)])
    for tid, got in order.items():
        assert all(a < b for a, b in itertools.pairwise(got)), f"{tid} versions received: {got}"
    for cdr in cdrs:
        data = cdr.data
        by_label = {(t["id"], label(t)): t for t in data["tariffs"]}
        session_start = parse_datetime(data["start_date_time"])
        if currently_in_test_context():
            lock = " under price lock" if price_lock else ""
            event(f"a CDR charged {len(cdr.explanation['tariffs_used'])} version(s){lock}")
        for line in cdr.explanation["lines"]:
            if line.get("tariff_id") is None:
                continue
            used = by_label.get((line["tariff_id"], line["tariff_version"]))
            assert used is not None, (line["tariff_id"], line["tariff_version"], list(by_label))
            for charge in line["periods"]:
                at = session_start if price_lock else parse_datetime(charge["start"])
                partner = held(received, line["tariff_id"], at)
                if currently_in_test_context():
                    note(f"{data['session_id']} charge at {charge['start']}: {line['tariff_version']}")
                assert partner is not None, f"the partner held no {line['tariff_id']} at {at}"
                assert identity(used) == identity(partner), (
                    at,
                    used["last_updated"],
                    partner["last_updated"],
                )
        for period in data["charging_periods"]:
            at = session_start if price_lock else parse_datetime(period["start_date_time"])
            if period.get("tariff_id") is not None:
                assert held(received, period["tariff_id"], at) is not None


@budget(12)
@given(cases())
def test_the_tariff_a_partner_held_is_the_tariff_charged(database_url: str, case: Case) -> None:
    """Issue 12 item 6 (e) (P1, P2, P3/D5, T8): every charge of a CDR is priced by the version the partner
    had last received (hub clock) at its period's start (at the session's start under price lock), and the
    versions a partner receives per tariff id are strictly increasing."""
    check(*asyncio.run(run(database_url, case)))
