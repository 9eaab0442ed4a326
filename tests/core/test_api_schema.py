"""Schemathesis against ``/openapi.json``: requests generated from the document, sent with a valid operator key
to the in-process ASGI app on a seeded database, get no 5xx and answers that match the documented schemas.

Bounded and reproducible: a few derandomized examples per operation (no example database), so the run is
the same on every machine and takes seconds. The hub is assembled inside schemathesis's own event loop (the
ASGI lifespan below), so its database connections live where the requests run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.python.asgi import shutdown_lifespans

from evhub.app import create_app
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.settings import load_settings
from tests.conftest import clear_tables
from tests.world.api_network import ApiNetwork, seed_api_network

MAX_EXAMPLES = 12


class HubLifespan:
    """An ASGI app that builds the hub (gateway started, other components installed) on lifespan startup and
    serves every request with it."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.hub: Hub | None = None
        self.gateway: Any = None

    async def _start(self) -> None:
        from cpo_gateway.component import GatewayComponent
        from ocpi.component import OcpiComponent
        from settlement.component import SettlementComponent
        from tariffs.component import PricingComponent

        settings = load_settings(
            database_url=self.database_url, api_auth=True, ocpp_host="127.0.0.1", ocpp_port=0, _env_file=None
        )
        hub = Hub(settings=settings, db=Database(self.database_url), node_name="schemathesis")
        hub.app = create_app(hub)
        self.gateway = GatewayComponent()
        for component in (self.gateway, PricingComponent(), OcpiComponent(), SettlementComponent()):
            component.install(hub)
        await self.gateway.start(hub)
        self.hub = hub

    async def _stop(self) -> None:
        if self.hub is not None:
            await self.gateway.stop()
            await self.hub.db.dispose()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self._start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self._stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.hub is not None and self.hub.app is not None
        await self.hub.app(scope, receive, send)


@pytest.fixture
def network(database_url: str) -> ApiNetwork:
    async def prepare() -> ApiNetwork:
        db = Database(database_url)
        try:
            await clear_tables(db)
            return await seed_api_network(db)
        finally:
            await db.dispose()

    return asyncio.run(prepare())


def known_objects(network: ApiNetwork) -> dict[str, dict[str, str]]:
    """Path parameters naming seeded objects, so generated queries and bodies also reach real rows."""
    return {
        "/api/chargers/{identity}": {"identity": "CP-AMS-01-1"},
        "/api/chargers/{identity}/commands/{command}": {"identity": "CP-AMS-01-1"},
        "/api/chargers/{identity}/call/{action}": {"identity": "CP-LDN-01-1"},
        "/api/sessions/{session_id}": {"session_id": network.sessions["amp"]},
        "/api/cdrs/{cdr_id}": {"cdr_id": network.cdrs["ldn"]},
        "/api/locations/{country_code}/{party_id}/{location_id}": {
            "country_code": "NL",
            "party_id": "AMP",
            "location_id": "AMS-CENTRAAL",
        },
        "/api/tokens/{country_code}/{party_id}/{uid}": {
            "country_code": "NL",
            "party_id": "EMS",
            "uid": "TOKEN-AMS",
        },
    }


def _exercise(
    operation: Any,
    headers: dict[str, str],
    mode: GenerationMode,
    path_parameters: dict[str, str] | None = None,
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        checks = [not_a_server_error]
        if mode is GenerationMode.POSITIVE:  # a request outside the schema may get an undocumented answer
            checks.append(response_schema_conformance)
        case.call_and_validate(headers=headers, checks=checks)

    run()


def test_no_server_error_and_documented_answers(database_url: str, network: ApiNetwork) -> None:
    app = HubLifespan(database_url)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {network.keys['hub']}"}
    failures: list[str] = []
    exercised = 0
    known = known_objects(network)
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            exercised += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _exercise(operation, headers, mode)
                except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except Exception as exc:
                    failures.append(f"{operation.label} ({mode.value}): {exc}")
            if operation.path in known:
                try:
                    _exercise(operation, headers, GenerationMode.POSITIVE, known[operation.path])
                except Exception as exc:
                    failures.append(f"{operation.label} (positive, seeded objects): {exc}")
    finally:
        shutdown_lifespans()
    assert exercised >= 20
    assert not failures, "\n\n".join(failures)
