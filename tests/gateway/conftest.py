"""Gateway fixtures: a seeded CPO with a location, two EVSEs, chargers for both OCPP versions, tokens, and a
running :class:`~cpo_gateway.server.Gateway` on a free port. Clients are real websocket clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cpo_gateway.component import GatewayComponent
from cpo_gateway.server import Gateway
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import (
    EVSE,
    ChargePoint,
    ChargePointEvse,
    Connector,
    Location,
    OcppVersion,
    Party,
    PartyRole,
    RegistrationStatus,
    Token,
)
from kernel.security import hash_password
from kernel.settings import Settings
from kernel.timeutil import utcnow

PASSWORD = "s3cret-charger-pw"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
EVHUB = str(Path(sys.executable).with_name("evhub"))
"""The ``evhub`` command of this virtualenv, for tests that run ``evhub serve`` as a process."""


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0, poll: float = 0.02
) -> None:
    """Return once ``condition()`` holds (asked every ``poll`` seconds); fail naming ``what`` if it does not
    within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} (not within {timeout} s)"
        await asyncio.sleep(poll)


@dataclass
class Seed:
    cpo_id: int
    location_id: int
    evse_pks: list[int]
    fleet_token_id: int


DEFAULT_TARIFF = {
    "country_code": "NL",
    "party_id": "ABC",
    "id": "DEFAULT",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}],
    "last_updated": "2026-01-01T00:00:00Z",
}
"""The seeded CPO NL*ABC's DEFAULT tariff, 0.30 EUR/kWh: what the gateway tests that price a session import."""


async def seed(db: Database) -> Seed:
    now = utcnow()
    async with db.session() as db_session:
        cpo = Party(country_code="NL", party_id="ABC", role=PartyRole.CPO, name="ABC Charging")
        emsp = Party(country_code="DE", party_id="XYZ", role=PartyRole.EMSP, name="XYZ Mobility")
        db_session.add_all([cpo, emsp])
        await db_session.flush()
        loc = Location(
            cpo_id=cpo.id, ocpi_id="LOC1", address="Main 1", city="Utrecht", country="NLD",
            latitude="52.0", longitude="5.1", time_zone="Europe/Amsterdam", last_updated=now,
        )  # fmt: skip
        db_session.add(loc)
        await db_session.flush()
        evse_pks = []
        for n in (1, 2, 3, 4):
            evse = EVSE(location_id=loc.id, uid=f"E{n}", evse_id=f"NL*ABC*E{n}", last_updated=T0)
            db_session.add(evse)
            await db_session.flush()
            db_session.add(Connector(evse_pk=evse.id, connector_id="1", standard="IEC_62196_T2", format="SOCKET",
                            power_type="AC_3_PHASE", max_voltage=230, max_amperage=32, last_updated=now))  # fmt: skip
            evse_pks.append(evse.id)
        pw = hash_password(PASSWORD)
        for ident, ver, evses, reg in (
            ("CP16", OcppVersion.V16, evse_pks[:2], RegistrationStatus.ACCEPTED),
            ("CP201", OcppVersion.V201, evse_pks[2:], RegistrationStatus.ACCEPTED),
            ("CPPEND", OcppVersion.V16, [], RegistrationStatus.PENDING),
        ):
            cp = ChargePoint(identity=ident, password_hash=pw, ocpp_version=ver, cpo_id=cpo.id,
                             location_id=loc.id, registration_status=reg)  # fmt: skip
            db_session.add(cp)
            await db_session.flush()
            for i, pk in enumerate(evses, start=1):
                db_session.add(ChargePointEvse(charge_point_id=cp.id, ocpp_evse_id=i, evse_pk=pk))
        fleet = Token(country_code="NL", party_id="ABC", uid="AABBCC01", contract_id="NL-ABC-C1", issuer="ABC",
                      monthly_limit=Decimal("100"), limit_currency="EUR", last_updated=now)  # fmt: skip
        db_session.add_all(
            [
                fleet,
                Token(
                    country_code="DE",
                    party_id="XYZ",
                    uid="ROAM0001",
                    contract_id="DE-XYZ-C1",
                    issuer="XYZ",
                    emsp_id=emsp.id,
                    last_updated=now,
                ),
                Token(
                    country_code="NL",
                    party_id="ABC",
                    uid="BLOCKED1",
                    contract_id="NL-ABC-C2",
                    issuer="ABC",
                    valid=False,
                    last_updated=now,
                ),
            ]
        )
        await db_session.flush()
        return Seed(cpo.id, loc.id, evse_pks, fleet.id)


@pytest.fixture
async def seeded(db: Database) -> Seed:
    return await seed(db)


def gateway_settings(database_url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": database_url, "ocpp_host": "127.0.0.1", "ocpp_port": 0, "heartbeat_interval": 60,
        "ocpp_command_timeout": 2, "ocpp_ping_interval": 0,
    }  # fmt: skip
    base.update(kw)
    return Settings(**base)


@pytest.fixture
async def gateway(db: Database, seeded: Seed, database_url: str) -> AsyncIterator[Gateway]:
    gw = Gateway(gateway_settings(database_url), db, "node-a")
    await gw.start("127.0.0.1", 0)
    try:
        yield gw
    finally:
        await gw.stop()


@contextlib.asynccontextmanager
async def command_hub(database_url: str, db: Database, *, command_timeout: float) -> AsyncIterator[Hub]:
    """A hub with only the gateway component installed and started (its REST command API on ``hub.app``),
    commands waiting ``command_timeout`` seconds for the charger's answer."""
    app = FastAPI()
    hub = Hub(
        settings=gateway_settings(database_url, ocpp_command_timeout=command_timeout),
        db=db,
        node_name="node-a",
        app=app,
    )
    app.state.hub = hub
    component = GatewayComponent()
    component.install(hub)
    await component.start(hub)
    try:
        yield hub
    finally:
        await component.stop()


def api_client(hub: Hub) -> httpx.AsyncClient:
    """An HTTP client on the hub's app, in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub")


def basic(identity: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{identity}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Client:
    """A raw OCPP-J client: sends CALLs, returns the answer frame; answers the server's CALLs."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.answers: dict[str, asyncio.Future[list[Any]]] = {}
        self.incoming: asyncio.Queue[list[Any]] = asyncio.Queue()
        self.auto_reply: dict[str, Any] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._loop()

    async def wait_closed(self, timeout: float = 5) -> int | None:
        await asyncio.wait_for(asyncio.shield(self.reader), timeout)
        return self.ws.close_code

    async def _loop(self) -> None:
        async for frame in self.ws:
            msg = json.loads(frame)
            if msg[0] == 2:
                self.incoming.put_nowait(msg)
                if msg[2] in self.auto_reply:
                    await self.ws.send(json.dumps([3, msg[1], self.auto_reply[msg[2]]]))
            else:
                fut = self.answers.pop(msg[1], None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                else:
                    self.incoming.put_nowait(msg)

    async def raw(self, text: str, uid: str) -> list[Any]:
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.answers[uid] = fut
        await self.ws.send(text)
        return await asyncio.wait_for(fut, 10)

    async def call(self, action: str, payload: dict[str, Any], uid: str | None = None) -> list[Any]:
        uid = uid or f"m{next(self.ids)}"
        return await self.raw(json.dumps([2, uid, action, payload]), uid)

    async def ok(self, action: str, payload: dict[str, Any], uid: str | None = None) -> dict[str, Any]:
        answer = await self.call(action, payload, uid)
        assert answer[0] == 3, answer
        return answer[2]

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def open_client(gw: Gateway, identity: str, protocol: str, **kw: Any) -> Client:
    headers = kw.pop("headers", basic(identity))
    ws = await connect(
        f"ws://127.0.0.1:{gw.port}/ocpp/{identity}", subprotocols=[protocol], additional_headers=headers, **kw
    )
    return Client(ws)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")
