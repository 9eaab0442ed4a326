"""A real hub over loopback HTTP: the OCPI component on a FastAPI app served by uvicorn on a free port, an
outbox dispatcher loop with short backoff, and helpers to seed CPOs, locations, tokens, sessions and CDRs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from evhub.components import Hub
from evhub.db.engine import Database
from evhub.models import (
    EVSE,
    Cdr,
    ChargePoint,
    ChargingSession,
    Connector,
    Location,
    OcppVersion,
    Party,
    PartyRole,
    Token,
)
from evhub.outbox import BackoffPolicy, OutboxDispatcher
from evhub.seams import Hooks, Services
from evhub.settings import Settings
from ocpi.component import OcpiComponent
from simulators.emsp import EmspSimulator
from tests.conftest import free_port

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@dataclass
class RunningHub:
    db: Database
    hub: Hub
    component: OcpiComponent
    dispatcher: OutboxDispatcher
    url: str
    services: Services = field(default_factory=Services)
    hooks: Hooks = field(default_factory=Hooks)

    @property
    def versions_url(self) -> str:
        return f"{self.url}/ocpi/versions"

    @property
    def platform(self):  # type: ignore[no-untyped-def]
        return self.component.platform


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # pragma: no cover - tests run in a thread-less loop
        pass


async def serve(app: FastAPI, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task


@pytest.fixture
async def hub(db: Database) -> AsyncIterator[RunningHub]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(database_url=db.url, public_url=url)
    app = FastAPI()
    h = Hub(settings=settings, db=db, node_name="test", app=app)
    dispatcher = OutboxDispatcher(
        db,
        batch_size=50,
        lease_seconds=5,
        backoff=BackoffPolicy(base=0.05, cap=0.4, jitter=0),
        max_attempts=500,
    )
    component = OcpiComponent(command_timeout=2, authorize_timeout=1.0, dispatcher=dispatcher)
    component.install(h)
    await component.start(h)
    server, task = await serve(app, port)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                await dispatcher.run_once()
            except Exception:  # keep the loop alive; the test will fail on its assertions
                import logging

                logging.getLogger(__name__).exception("dispatcher loop")
            await asyncio.sleep(0.03)

    loop_task = asyncio.create_task(loop())
    try:
        yield RunningHub(db, h, component, dispatcher, url, h.services, h.hooks)
    finally:
        stop.set()
        await loop_task
        await component.stop()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


@pytest.fixture
async def sim() -> AsyncIterator[EmspSimulator]:
    s = EmspSimulator(country_code="DE", party_id="EMS", name="Sim eMSP", hub_timeout=5)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def sim2() -> AsyncIterator[EmspSimulator]:
    s = EmspSimulator(country_code="FR", party_id="OTH", name="Other eMSP", hub_timeout=5)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def seed_cpo(db: Database, cc: str = "NL", pid: str = "CPO", name: str = "Hosted CPO") -> int:
    async with db.session() as s:
        party = Party(country_code=cc, party_id=pid, role=PartyRole.CPO, name=name)
        s.add(party)
        await s.flush()
        return party.id


async def seed_location(
    db: Database,
    cpo_id: int,
    ocpi_id: str = "LOC1",
    evses: int = 2,
    *,
    publish: bool = True,
    updated: datetime = T0,
) -> int:
    async with db.session() as s:
        loc = Location(
            cpo_id=cpo_id,
            ocpi_id=ocpi_id,
            name=f"Site {ocpi_id}",
            address="Stationsplein 1",
            city="Utrecht",
            postal_code="3511",
            country="NLD",
            latitude="52.0894",
            longitude="5.1101",
            time_zone="Europe/Amsterdam",
            publish=publish,
            data={"parking_type": "ON_STREET"},
            last_updated=updated,
        )
        for n in range(1, evses + 1):
            evse = EVSE(
                uid=f"{ocpi_id}-E{n}",
                evse_id=f"NL*CPO*E{ocpi_id}{n}",
                status="AVAILABLE",
                last_updated=updated,
            )
            evse.connectors.append(
                Connector(
                    connector_id="1",
                    standard="IEC_62196_T2",
                    format="SOCKET",
                    power_type="AC_3_PHASE",
                    max_voltage=230,
                    max_amperage=32,
                    last_updated=updated,
                )
            )
            loc.evses.append(evse)
        s.add(loc)
        await s.flush()
        return loc.id


async def seed_charge_point(db: Database, cpo_id: int, location_id: int, identity: str = "CP1") -> int:
    async with db.session() as s:
        cp = ChargePoint(
            identity=identity, ocpp_version=OcppVersion.V16, cpo_id=cpo_id, location_id=location_id
        )
        s.add(cp)
        await s.flush()
        return cp.id


async def token_pk(db: Database, uid: str) -> Token:
    from sqlalchemy import select

    async with db.session() as s:
        token = await s.scalar(select(Token).where(Token.uid == uid))
        assert token is not None, f"token {uid} not stored"
        return token


async def seed_session(
    db: Database, cpo_id: int, cp_id: int, location_id: int, token: Token, uid: str, *, tx: str = "1"
) -> int:
    async with db.session() as s:
        loc = await s.get(Location, location_id)
        from sqlalchemy import select

        evse = await s.scalar(select(EVSE).where(EVSE.location_id == location_id).order_by(EVSE.id))
        assert loc is not None and evse is not None
        cs = ChargingSession(
            session_uid=uid,
            charge_point_id=cp_id,
            transaction_id=tx,
            cpo_id=cpo_id,
            location_id=location_id,
            evse_pk=evse.id,
            token_id=token.id,
            id_tag=token.uid,
            start_time=T0,
            meter_start_wh=Decimal(1000),
            energy_wh=Decimal(0),
            currency="EUR",
            last_updated=T0,
        )
        s.add(cs)
        await s.flush()
        return cs.id


async def seed_cdr(db: Database, session_pk: int, cpo_id: int, emsp_id: int | None, cdr_uid: str) -> int:
    async with db.session() as s:
        cs = await s.get(ChargingSession, session_pk)
        assert cs is not None
        end = T0 + timedelta(hours=1)
        cdr = Cdr(
            cdr_uid=cdr_uid,
            session_id=session_pk,
            cpo_id=cpo_id,
            emsp_id=emsp_id,
            location_id=cs.location_id,
            token_id=cs.token_id,
            currency="EUR",
            start_date_time=T0,
            end_date_time=end,
            total_energy_kwh=Decimal("11.5"),
            total_time_hours=Decimal("1"),
            total_cost_excl_vat=Decimal("4.03"),
            total_cost_incl_vat=Decimal("4.80"),
            data={
                "country_code": "NL",
                "party_id": "CPO",
                "id": cdr_uid,
                "start_date_time": "2026-03-01T08:00:00Z",
                "end_date_time": "2026-03-01T09:00:00Z",
                "session_id": cs.session_uid,
                "currency": "EUR",
                "total_cost": {"excl_vat": 4.03, "incl_vat": 4.80},
                "total_energy": 11.5,
                "total_time": 1.0,
                "last_updated": "2026-03-01T09:00:00Z",
            },
            last_updated=end,
        )
        s.add(cdr)
        await s.flush()
        return cdr.id


async def connect(
    running: RunningHub, simulator: EmspSimulator, *, allowed_cpo_ids: list[int] | None = None
) -> int:
    """Register ``simulator`` with the hub through the real handshake (token A from an invitation), and wait
    for the tokens pull the registration starts, so that it cannot overwrite what the test does next."""
    from ocpi import credentials

    inv = await credentials.invite(
        running.db, running.platform, simulator.name, allowed_cpo_ids=allowed_cpo_ids
    )
    await simulator.register(inv.versions_url, inv.token_a)
    puller = running.component.tokens
    if puller is not None:
        await puller.wait_idle()
    return inv.partner_id
