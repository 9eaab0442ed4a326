"""The OCPI tests' world: a hub (the OCPI component on a FastAPI app, an outbox dispatcher loop with short
backoff) and simulated eMSPs, all in one process.

By default nothing listens on a socket: the hub and the simulators are ASGI apps on one
:class:`~tests.ocpi._network.InProcessNetwork` (``http://hub.test``, ``http://emsp-de.test``,
``http://emsp-fr.test``), which is the HTTP transport of the hub's OCPI client and of the simulators. A test
marked ``@pytest.mark.real_sockets`` gets the same world over loopback HTTP instead (uvicorn on free ports, the
default network transport everywhere), for what only a real socket shows. Shared helpers live in
:mod:`tests.ocpi._helpers`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from kernel.components import Hub
from kernel.db.engine import Database
from kernel.httpserver import HttpServer
from kernel.outbox import BackoffPolicy, OutboxDispatcher
from kernel.seams import Hooks, Services
from kernel.settings import Settings
from ocpi.component import OcpiComponent
from ocpi.platform import OcpiPlatform
from simulators.emsp import EmspSimulator
from tests.ocpi._network import InProcessNetwork

log = logging.getLogger(__name__)

CLIENT_TIMEOUT = 60.0
"""Seconds a test's request to the hub may take (:meth:`RunningHub.http`), and its wait for dispatcher rounds
(:meth:`RunningHub.dispatched`): an upper bound for a loaded CI box, never a wait (each ends as soon as the
answer or the rounds are there; no test is about the hub answering slowly)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_sockets: the OCPI hub and simulators over loopback HTTP (uvicorn) instead of in-process",
    )


@dataclass
class RunningHub:
    db: Database
    hub: Hub
    component: OcpiComponent
    dispatcher: OutboxDispatcher
    url: str
    transport: httpx.AsyncBaseTransport | None  # how to reach the hub (None: the network)
    dispatch_rounds: int = 0  # dispatcher rounds completed so far (a round delivers everything due)

    @property
    def services(self) -> Services:
        return self.hub.services

    @property
    def hooks(self) -> Hooks:
        return self.hub.hooks

    @property
    def versions_url(self) -> str:
        return f"{self.url}/ocpi/versions"

    @property
    def platform(self) -> OcpiPlatform:
        assert self.component.platform is not None
        return self.component.platform

    def http(self) -> httpx.AsyncClient:
        """An HTTP client that reaches the hub (and the simulators) the way they reach each other; it waits
        :data:`CLIENT_TIMEOUT` seconds for an answer (httpx's default, 5 s, was exceeded on a loaded box)."""
        return httpx.AsyncClient(transport=self.transport, timeout=CLIENT_TIMEOUT)

    async def dispatched(self, rounds: int = 2) -> None:
        """Return once the dispatcher loop completed ``rounds`` more rounds: whatever was due when this was
        called has been attempted (the proof a negative assertion needs, instead of a sleep)."""
        target = self.dispatch_rounds + rounds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLIENT_TIMEOUT  # rounds are short; a loaded box may stretch a few of them
        while self.dispatch_rounds < target:
            assert loop.time() < deadline, (
                f"the dispatcher loop stopped (no {rounds} rounds in {CLIENT_TIMEOUT} s)"
            )
            await asyncio.sleep(0.01)


@pytest.fixture
def real_sockets(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("real_sockets") is not None


@pytest.fixture
def network(real_sockets: bool) -> InProcessNetwork | None:
    """The in-process network the hub and the simulators share (None for a ``real_sockets`` test)."""
    return None if real_sockets else InProcessNetwork()


@pytest.fixture
async def hub(db: Database, network: InProcessNetwork | None) -> AsyncIterator[RunningHub]:
    app = FastAPI()
    server = HttpServer(app) if network is None else None  # bound now: the url is known before it serves
    url = server.url if server is not None else "http://hub.test"
    settings = Settings(database_url=db.url, public_url=url)
    h = Hub(settings=settings, db=db, node_name="test", app=app)
    dispatcher = OutboxDispatcher(
        db,
        batch_size=50,
        lease_seconds=5,
        backoff=BackoffPolicy(base=0.05, cap=0.4, jitter=0),
        max_attempts=500,
    )
    component = OcpiComponent(
        command_timeout=2, authorize_timeout=1.0, dispatcher=dispatcher, transport=network
    )
    component.install(h)
    await component.start(h)  # what evhub.app does at start (the app has no lifespan of its own)
    if server is not None:
        await server.start()
    else:
        network.serve("hub.test", app)
    running = RunningHub(db, h, component, dispatcher, url, network)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                await dispatcher.run_once()
            except Exception:  # keep the loop alive; the test will fail on its assertions
                log.exception("dispatcher loop")
            running.dispatch_rounds += 1
            await asyncio.sleep(0.03)

    loop_task = asyncio.create_task(loop())
    try:
        yield running
    finally:
        stop.set()
        await loop_task
        await component.stop()
        if server is not None:
            await server.stop()


async def _simulator(
    network: InProcessNetwork | None, host: str, **kwargs: str
) -> AsyncIterator[EmspSimulator]:
    sim = EmspSimulator(**kwargs, hub_timeout=30, transport=network)  # generous: a loaded box, never a wait
    if network is None:
        await sim.start()
    else:
        sim.url = network.serve(host, sim.app)
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def sim(network: InProcessNetwork | None) -> AsyncIterator[EmspSimulator]:
    async for s in _simulator(network, "emsp-de.test", country_code="DE", party_id="EMS", name="Sim eMSP"):
        yield s


@pytest.fixture
async def sim2(network: InProcessNetwork | None) -> AsyncIterator[EmspSimulator]:
    async for s in _simulator(network, "emsp-fr.test", country_code="FR", party_id="OTH", name="Other eMSP"):
        yield s
