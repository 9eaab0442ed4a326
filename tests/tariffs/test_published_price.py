"""Published price == charged price (issue #12, defects P2, P3/D5, P4): a tariff version never applies before
the moment partners could have received it (``max(start_date_time, created_at)``); a late grid sample does not
re-price minutes already consumed, and its version carries the publication time as ``last_updated``;
``cdrs correct`` reproduces the original total when no new data came; the deliveries (hooks) of grid load and
rating are required arguments."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from evhub import provisioning as prov
from kernel.clock import CLOCK
from kernel.db.engine import Database
from kernel.models import Cdr, TariffVersion
from kernel.timeutil import parse_datetime
from tariffs.core.grid_rules import GridRule, apply_rule
from tariffs.core.tariff_json import load_tariff
from tariffs.dynamic import attach_rules, record_load
from tariffs.rating import correct_cdr, rate_pending
from tariffs.tariff_versions import effective_from
from tests.conftest import TEST_CLOCK_START
from tests.world.demo_network import demo_json, seed_pricing_network
from tests.world.sessions import seed_ended_session

T0 = TEST_CLOCK_START  # 2026-06-16 10:00 UTC = 12:00 in Amsterdam: AMS-TOD's day price 0.39/kWh + 0.50 flat
# The sessions charge 10 kWh in 10 minutes (60 kW): at AMS-02-1, the 150 kW DC EVSE (M8 holds more than a
# connector can deliver, so the 22 kW AMS-01 EVSEs would hold them).
V1_TOTAL = Decimal("0.50") + Decimal("3.90")  # a 10 kWh session at version 1


def _at(minutes: float) -> None:
    """Move the hub's clock to ``T0 + minutes``."""
    CLOCK.pin(T0 + timedelta(minutes=minutes))


async def _cdrs(db: Database) -> list[Cdr]:
    async with db.session() as s:
        return list((await s.scalars(select(Cdr).order_by(Cdr.id))).all())


def test_the_publication_rule_in_one_place() -> None:
    """D5: effective from max(start_date_time, created_at); the first open-ended version always."""
    created = datetime(2026, 6, 16, 10, 12, tzinfo=UTC)
    assert effective_from(None, created, first=True) is None
    assert effective_from(None, created, first=False) == created
    assert effective_from(created - timedelta(minutes=7), created, first=False) == created  # back-dated
    assert effective_from(created - timedelta(minutes=7), created, first=True) == created
    assert effective_from(created + timedelta(days=1), created, first=False) == created + timedelta(days=1)


def test_a_grid_version_is_last_updated_when_published_not_at_its_sample_time() -> None:
    """P4: ``last_updated`` of a grid version is its publication time, never the earlier sample time."""
    base = load_tariff(
        '{"country_code": "NL", "party_id": "AMP", "id": "DYN", "currency": "EUR", "last_updated": "2026-06-01T00:00:00Z",'
        ' "elements": [{"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}]}'
    )
    sample, published = T0 + timedelta(minutes=5), T0 + timedelta(minutes=12)
    version = apply_rule(base, GridRule.above(80, energy="0.10"), published, published)
    assert version.last_updated == published and version.start_date_time == published
    assert apply_rule(base, None, sample, published).last_updated == published


def test_the_deliveries_cannot_be_forgotten() -> None:
    """P2: grid load, rating and corrections take their hooks as a required argument (no silent default)."""
    for function in (record_load, rate_pending, correct_cdr):
        hooks = inspect.signature(function).parameters["hooks"]
        assert hooks.default is inspect.Parameter.empty, function.__name__


async def test_a_late_grid_sample_does_not_reprice_consumed_minutes(db: Database) -> None:
    """P3: a sample stamped 10:05 that arrives at 10:12 publishes a version valid from 10:12, last updated at
    10:12; the session of 10:00-10:10 pays the price partners held (version 1) for every minute."""
    await seed_pricing_network(db)
    async with db.session() as s:
        cpo = await prov.find_party(s, "NL*AMP", prov.PartyRole.CPO)
        await attach_rules(s, "NL-NH", cpo.id, "AMS-TOD", demo_json("grid_rules.json"))
    await seed_ended_session(db, "AMS-02-1", T0, 10, "10")
    _at(12)
    published = await record_load(db, "NL-NH", T0 + timedelta(minutes=5), Decimal(95), ())
    assert [v.version for v in published] == [2]
    async with db.session() as s:
        row = await s.scalar(select(TariffVersion).where(TariffVersion.version == 2))
    assert row is not None and row.start_date_time is not None
    assert row.start_date_time >= T0 + timedelta(minutes=12)
    assert row.start_date_time == row.created_at == row.last_updated
    assert parse_datetime(row.data["last_updated"]) == row.created_at  # what partners receive
    assert parse_datetime(row.data["start_date_time"]) == row.start_date_time
    assert await rate_pending(db, ()) == 1
    (cdr,) = await _cdrs(db)
    assert cdr.total_cost_excl_vat == V1_TOTAL
    assert len(cdr.tariff_versions) == 1


async def test_a_back_dated_version_applies_only_from_when_it_was_stored(db: Database) -> None:
    """D5: a version imported at 10:20 with start_date_time 10:00 never prices the session of 10:00-10:10;
    ``cdrs correct`` then reproduces the original total; a session after 10:20 pays the new price."""
    await seed_pricing_network(db)
    await seed_ended_session(db, "AMS-02-1", T0, 10, "10")
    _at(12)
    assert await rate_pending(db, ()) == 1
    (original,) = await _cdrs(db)
    assert original.total_cost_excl_vat == V1_TOTAL
    _at(20)
    tariff = demo_json("tariffs.json")[0]
    tariff["elements"][2]["price_components"][0]["price"] = 0.49
    tariff["last_updated"] = "2026-06-16T10:20:00Z"
    tariff["start_date_time"] = "2026-06-16T10:00:00Z"
    async with db.session() as s:
        row, created = await prov.import_tariff(s, tariff)
        assert created and row.version == 2
    credit, fresh = await correct_cdr(db, original.cdr_uid, ())
    assert credit.total_cost_excl_vat == -original.total_cost_excl_vat
    assert fresh.total_cost_excl_vat == original.total_cost_excl_vat  # no new data: the same money
    await seed_ended_session(db, "AMS-02-1", T0 + timedelta(minutes=21), 10, "10", uid="sess-2")
    _at(40)
    assert await rate_pending(db, ()) == 1
    later = (await _cdrs(db))[-1]
    assert later.data["session_id"] == "sess-2"
    assert later.total_cost_excl_vat == Decimal("0.50") + Decimal("4.90")
