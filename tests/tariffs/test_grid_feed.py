"""The simulated grid feed drives dynamic prices through the real HTTP API."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from evhub import provisioning as prov
from evhub.app import RunningHub
from evhub.cli import app
from kernel.db.engine import Database
from kernel.models import TariffVersion
from kernel.settings import load_settings
from simulators.grid import GridFeed, GridFeedError, load_curve
from tariffs.component import PricingComponent
from tariffs.dynamic import attach_rules
from tests.world.demo_network import DEMO, seed_pricing_network


def test_load_curve_is_deterministic_and_bounded() -> None:
    start = datetime(2026, 11, 10, tzinfo=UTC)
    a = list(load_curve(start, timedelta(minutes=15), 96))
    assert a == list(load_curve(start, timedelta(minutes=15), 96))
    assert all(Decimal(0) <= load <= Decimal(100) for _, load in a)
    assert max(load for _, load in a) > Decimal(80) and min(load for _, load in a) < Decimal(30)


async def test_feed_publishes_tariff_versions_over_http(db: Database) -> None:
    await seed_pricing_network(db)
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
        # A zone no location carries is refused by the hub, and the feed says so in one line.
        with pytest.raises(GridFeedError, match=r"refused the sample: HTTP 422: unknown grid zone 'NOPE'"):
            await GridFeed(hub.hub.endpoints["http"], "NOPE").post(datetime(2026, 11, 11, tzinfo=UTC), 50)
        cli = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["simulate", "grid", "NOPE", "--url", hub.hub.endpoints["http"], "--samples", "1"],
        )
        assert cli.exit_code == 1 and cli.stderr.startswith("error: ") and "unknown grid zone" in cli.stderr
        assert "Traceback" not in cli.output
    finally:
        await hub.stop()
    async with db.session() as s:
        grid_versions = (
            await s.scalars(
                select(TariffVersion).where(TariffVersion.source == "grid").order_by(TariffVersion.id)
            )
        ).all()
    assert len(published) == len(grid_versions) >= 2  # at least into and out of a band during one day
    starts = [v.start_date_time for v in grid_versions]
    assert starts == sorted(starts)
    assert all(b - a >= timedelta(minutes=30) for a, b in itertools.pairwise(starts))  # min hold


async def test_record_load_and_attach_refuse_what_cannot_be_a_grid_state(db: Database) -> None:
    from kernel.models import GridLoadSample, GridTariffRule
    from tariffs.dynamic import GridConfigError, record_load

    await seed_pricing_network(db)
    at = datetime(2026, 11, 10, 12, tzinfo=UTC)
    for zone, load, says in [
        ("NL-NH", Decimal("100.01"), "between 0 and 100"),
        ("NL-NH", Decimal("-0.1"), "between 0 and 100"),
        ("NL-NH", Decimal("NaN"), "between 0 and 100"),
        ("XX-NOPE", Decimal(50), "unknown grid zone 'XX-NOPE' (known: NL-NH)"),
    ]:
        with pytest.raises(GridConfigError, match=re.escape(says)):
            await record_load(db, zone, at, load, ())
    assert await record_load(db, "NL-NH", at, Decimal(100), ()) == []  # the bounds themselves are loads
    rules = json.loads((DEMO / "grid_rules.json").read_text())
    async with db.session() as s:
        cpo = await prov.find_party(s, "NL*AMP", prov.PartyRole.CPO)
        for kwargs, says in [
            ({"hysteresis": Decimal(-1)}, "hysteresis -1"),
            ({"hysteresis": Decimal("100.5")}, "hysteresis 100.5"),
            ({"min_hold_s": -1}, "min_hold -1"),
        ]:
            with pytest.raises(GridConfigError, match=re.escape(says)):
                await attach_rules(s, "NL-NH", cpo.id, "AMS-TOD", rules, **kwargs)
        with pytest.raises(GridConfigError, match="unknown grid zone"):
            await attach_rules(s, "XX-NOPE", cpo.id, "AMS-TOD", rules)
    async with db.session() as s:
        assert len((await s.scalars(select(GridLoadSample))).all()) == 1
        assert (await s.scalars(select(GridTariffRule))).all() == []
