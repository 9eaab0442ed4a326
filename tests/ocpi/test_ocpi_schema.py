"""Schemathesis against ``/ocpi/openapi.json`` (issue 15 item 5): requests generated from the OCPI platform's own
document, positive and negative, sent in-process (ASGI) to the assembled hub app (every component installed, the
guard of ``evhub.app`` included) with a registered eMSP's token C and its routing headers: no 5xx. Credentials
POST/PUT/DELETE are left out (they would end the registration or fetch a generated URL; the handshake tests
cover them).

Bounded: ``MAX_EXAMPLES`` derandomized examples per operation and mode (no example database), seconds on SQLite.
``EVHUB_SCHEMATHESIS_EXAMPLES=200`` runs a long variant (``make faults``).
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import select

from evhub.app import create_app
from evhub.wiring import load_components, wire
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Party
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, PartnerStatus
from kernel.security import hash_token
from kernel.settings import load_settings
from tests.conftest import clear_tables
from tests.world.api_network import seed_api_network

MAX_EXAMPLES = int(os.environ.get("EVHUB_SCHEMATHESIS_EXAMPLES", "6"))
TOKEN_C = "schemathesis-token-c-0123456789"


class HubLifespan:
    """The assembled hub app, built on the ASGI lifespan startup inside schemathesis's own event loop."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.hub: Hub | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    settings_ = load_settings(database_url=self.database_url, _env_file=None)
                    hub = Hub(settings=settings_, db=Database(self.database_url), node_name="schemathesis")
                    hub.app = create_app(hub)
                    wire(hub, load_components())
                    self.hub = hub
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.hub is not None:
                        await self.hub.db.dispose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.hub is not None and self.hub.app is not None
        await self.hub.app(scope, receive, send)


@pytest.fixture
def registered(database_url: str) -> None:
    """The API world, and its eMSP NL*EMS registered on OCPI 2.2.1 with token C :data:`TOKEN_C`."""

    async def prepare() -> None:
        db = Database(database_url)
        try:
            await clear_tables(db)
            await seed_api_network(db)
            async with db.session() as s:
                emsp = await s.scalar(
                    select(Party).where(Party.country_code == "NL", Party.party_id == "EMS")
                )
                assert emsp is not None
                partner = OcpiPartner(
                    name="Roam",
                    status=PartnerStatus.REGISTERED,
                    version="2.2.1",
                    incoming_token_hash=hash_token(TOKEN_C),
                    incoming_token_kind="C",
                    tokens_pulled_at=None,
                )
                s.add(partner)
                await s.flush()
                s.add(
                    OcpiPartnerRole(
                        partner_id=partner.id,
                        party_pk=emsp.id,
                        country_code="NL",
                        party_id="EMS",
                        role="EMSP",
                    )
                )
        finally:
            await db.dispose()

    asyncio.run(prepare())


HEADERS = {
    "Authorization": "Token " + base64.b64encode(TOKEN_C.encode()).decode(),  # 2.2.1: the token in base64
    "OCPI-from-country-code": "NL",
    "OCPI-from-party-id": "EMS",
    "OCPI-to-country-code": "NL",
    "OCPI-to-party-id": "AMP",
}


def _exercise(operation: Any, mode: GenerationMode, statuses: list[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.headers = {
            **(case.headers or {}),
            **HEADERS,
        }  # headers= alone drops the security scheme's header
        response = case.call_and_validate(checks=[not_a_server_error])
        statuses.append(response.status_code)

    run()


def test_no_server_error_on_the_ocpi_platform(database_url: str, registered: None) -> None:
    schema = schemathesis.openapi.from_asgi("/ocpi/openapi.json", HubLifespan(database_url))
    failures: list[str] = []
    statuses: list[int] = []
    exercised = 0
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path.endswith("/credentials") and operation.method.upper() != "GET":
                continue  # would unregister the partner or rotate its token (and fetch a generated URL)
            exercised += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _exercise(operation, mode, statuses)
                except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except Exception as exc:
                    failures.append(f"{operation.label} ({mode.value}): {exc}")
    finally:
        shutdown_lifespans()
    assert exercised >= 20
    assert not failures, "\n\n".join(failures)
    # the token and routing headers were taken: requests reached the modules, not only the 401
    assert sum(200 <= code < 300 for code in statuses) >= exercised, sorted(set(statuses))
