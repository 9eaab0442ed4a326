"""Hypothesis profiles of the property tests (issue 12, item 6), and the gateway the DB-level ones drive.

``properties-ci``: derandomized (the same examples on every run, so CI is reproducible and a failure is
replayed by re-running), no deadline (a loaded 2-core machine must not turn slowness into failures), no example
database (as the suite's ``evhub`` profile). ``properties-nightly``: the same with random examples. Each test
picks its example count with :func:`tests.properties.strategies.budget`; health checks stay on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest
from hypothesis import settings

from cpo_gateway.server import Gateway
from evhub import provisioning as prov
from kernel.db.engine import Database
from tests.gateway.conftest import Seed, gateway_settings, seed

settings.register_profile("properties-ci", deadline=None, derandomize=True, database=None)
settings.register_profile("properties-nightly", deadline=None, derandomize=False, database=None)

DEFAULT_TARIFF = {
    "country_code": "NL",
    "party_id": "ABC",
    "id": "DEFAULT",
    "currency": "EUR",
    "last_updated": "2026-01-01T00:00:00Z",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": D("0.50"), "vat": D(21)},
                {"type": "ENERGY", "price": D("0.30"), "vat": D(21), "step_size": 1},
                {"type": "TIME", "price": D("1.20"), "vat": D(21), "step_size": 60},
                {"type": "PARKING_TIME", "price": D("3.00"), "vat": D(21), "step_size": 300},
            ]
        }
    ],
}
"""The CPO's DEFAULT tariff for the gateway-level properties (every connector falls back to it)."""


@pytest.fixture
async def charging_network(db: Database) -> Seed:
    """The gateway tests' CPO, chargers (CP16, CP201) and tokens, with :data:`DEFAULT_TARIFF`."""
    seeded = await seed(db)
    async with db.session() as s:
        await prov.import_tariff(s, DEFAULT_TARIFF)
    return seeded


@pytest.fixture
async def props_gateway(db: Database, charging_network: Seed, database_url: str) -> AsyncIterator[Gateway]:
    """A running gateway on a free port over :func:`charging_network`, shared by the examples of one test
    (each example uses transaction ids of its own)."""
    gw = Gateway(gateway_settings(database_url), db, "node-props")
    await gw.start("127.0.0.1", 0)
    try:
        yield gw
    finally:
        await gw.stop()
