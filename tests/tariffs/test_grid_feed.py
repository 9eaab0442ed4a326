"""The simulated grid feed drives dynamic prices through the real HTTP API."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from evhub import provisioning as prov
from evhub.app import RunningHub
from evhub.db.engine import Database
from evhub.models import TariffVersion
from evhub.settings import load_settings
from simulators.grid import GridFeed, load_curve
from tariffs.component import PricingComponent
from tariffs.dynamic import attach_rules
from tests.tariffs.test_rating_db import DEMO, _network


def test_load_curve_is_deterministic_and_bounded() -> None:
    start = datetime(2026, 11, 10, tzinfo=UTC)
    a = list(load_curve(start, timedelta(minutes=15), 96))
    assert a == list(load_curve(start, timedelta(minutes=15), 96))
    assert all(Decimal(0) <= load <= Decimal(100) for _, load in a)
    assert max(load for _, load in a) > Decimal(80) and min(load for _, load in a) < Decimal(30)


async def test_feed_publishes_tariff_versions_over_http(db: Database) -> None:
    await _network(db)
    async with db.session() as s:
        cpo = await prov.find_party(s, "NL*AMP", prov.PartyRole.CPO)
        rules = json.loads((DEMO / "grid_rules.json").read_text())
        await attach_rules(s, "NL-NH", cpo.id, "AMS-TOD", rules, hysteresis=Decimal(5), min_hold_s=1800)
    hub = RunningHub(
        load_settings(database_url=db.url, http_host="127.0.0.1", http_port=0, _env_file=None),
        components=[PricingComponent(interval=3600)],
    )
    await hub.start()
    try:
        feed = GridFeed(hub.hub.endpoints["http"], "NL-NH")
        published = await feed.replay(
            list(load_curve(datetime(2026, 11, 10, tzinfo=UTC), timedelta(minutes=15), 96))
        )
    finally:
        await hub.stop()
    async with db.session() as s:
        grid_versions = (await s.scalars(select(TariffVersion).where(TariffVersion.source == "grid"))).all()
    assert len(published) == len(grid_versions) >= 2  # at least into and out of a band during one day
    starts = [v.start_date_time for v in grid_versions]
    assert starts == sorted(starts)
    assert all(b - a >= timedelta(minutes=30) for a, b in itertools.pairwise(starts))  # min hold
