"""A partner receives the versions of a tariff id in increasing order only (issue #12, defect P1: the 15-second
scanner re-pushed a superseded tariff version after a newer one, so the partner held a stale price): the scanner
looks at the latest version of each tariff id, a version is queued only while it is the latest and newer than
what the partner was queued, and the sender skips a queued PUT that a newer version superseded."""

from __future__ import annotations

from sqlalchemy import select

from kernel.models import OutboxMessage, TariffVersion
from ocpi.push.hooks import tariff_hook
from ocpi.push.tariff_push import enqueue_tariff
from tests.ocpi._helpers import connect
from tests.ocpi._pushes import dyn_tariff_version
from tests.world.sites import seed_cpo

PRICES = {1: 0.25, 2: 0.31, 3: 0.37}


def _version(cpo: int, version: int) -> TariffVersion:
    return dyn_tariff_version(cpo, version, PRICES[version], f"2026-03-01T08:0{version}:00Z")


def _received(sim) -> list[float]:
    return [
        r.body["elements"][0]["price_components"][0]["price"]
        for r in sim.log
        if r.method == "PUT" and "/tariffs/" in r.path
    ]


def _price(sim) -> float | None:
    return sim.tariffs.get("DYN", {}).get("elements", [{}])[0].get("price_components", [{}])[0].get("price")


async def test_the_scanner_never_sends_a_superseded_version_after_a_newer_one(hub, sim):
    cpo = await seed_cpo(hub.db)
    await connect(hub, sim)
    async with hub.db.session() as s:
        s.add(_version(cpo, 1))  # stored by a path that queued nothing (failed hook, no hooks)
    for version in (2, 3):
        async with hub.db.session() as s:
            row = _version(cpo, version)
            s.add(row)
            await s.flush()
            await tariff_hook(s, row)
    await sim.wait_for(lambda: _price(sim) == PRICES[3])
    assert await hub.component.scan_once() == 0  # the latest was queued already; v1 is superseded
    await hub.dispatched()
    received = _received(sim)
    assert PRICES[1] not in received and received[-1] == PRICES[3]
    assert received == sorted(received)  # versions in increasing order only
    assert _price(sim) == PRICES[3]


async def test_the_scanner_queues_the_latest_version_only(hub, sim):
    cpo = await seed_cpo(hub.db)
    async with hub.db.session() as s:
        for version in (1, 2, 3):
            s.add(_version(cpo, version))  # stored before the partner registered
    await connect(hub, sim)
    assert await hub.component.scan_once() == 1
    await sim.wait_for(lambda: _price(sim) == PRICES[3])
    assert await hub.component.scan_once() == 0
    await hub.dispatched()
    assert _received(sim) == [PRICES[3]]


async def test_the_sender_skips_a_queued_put_that_a_newer_version_superseded(hub, sim):
    cpo = await seed_cpo(hub.db)
    await connect(hub, sim)
    async with hub.db.session() as s:  # a backlog: v1 queued, then v2 stored and queued before delivery
        for version in (1, 2):
            row = _version(cpo, version)
            s.add(row)
            await s.flush()
            assert await enqueue_tariff(row, s) == 1
        assert (
            await enqueue_tariff(await s.scalar(select(TariffVersion).where(TariffVersion.version == 1)), s)
            == 0
        )
    await sim.wait_for(lambda: _price(sim) == PRICES[2])
    await hub.dispatched()
    assert _received(sim) == [PRICES[2]]
    async with hub.db.session() as s:
        skipped = [
            m.result.get("skipped")
            for m in (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
            if m.payload.get("module") == "tariffs"
        ]
    assert skipped == ["superseded by tariff version 2", None]
