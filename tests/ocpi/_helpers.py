"""What the OCPI tests share besides their fixtures: seeding CPOs, locations, chargers, tokens, sessions and
CDRs; the handshake of a simulator with the hub (:func:`connect`); a fake gateway answering commands like a
charger; and :func:`wait_until`, which polls a condition with a deadline and fails loudly (no fixed sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from kernel.clock import CLOCK
from kernel.db.engine import Database
from kernel.models import (
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
from ocpi import credentials
from simulators.emsp import EmspSimulator

if TYPE_CHECKING:
    from tests.ocpi.conftest import RunningHub

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool], what: str, *, timeout: float = 10.0, every: float = 0.02
) -> None:
    """Poll ``condition`` (sync or async) until it is true; ``AssertionError`` naming ``what`` after
    ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        await asyncio.sleep(every)


def advance_clock(seconds: float) -> None:
    """Move the hub's clock (:func:`kernel.timeutil.utcnow`) ``seconds`` ahead, at once: deadlines pass without
    the test waiting for them. The test's clock pin is restored when the test ends."""
    CLOCK.pin(CLOCK.now() + timedelta(seconds=seconds))


class FakeGateway:
    """Implements ocpi.command_runner.GatewayCommands; answers like a charger would, after ``delay`` seconds."""

    def __init__(self, answer: str = "ACCEPTED", delay: float = 0.05) -> None:
        self.answer, self.delay = answer, delay
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def _reply(self, name: str, kwargs: dict[str, Any]) -> str:
        self.calls.append((name, kwargs))
        await asyncio.sleep(self.delay)  # the charger's own time to answer, not a wait of the test
        return self.answer

    async def start_session(self, **kw: Any) -> str:
        return await self._reply("start_session", kw)

    async def stop_session(self, **kw: Any) -> str:
        return await self._reply("stop_session", kw)

    async def unlock_connector(self, **kw: Any) -> str:
        return await self._reply("unlock_connector", kw)

    async def reserve_now(self, **kw: Any) -> str:
        return await self._reply("reserve_now", kw)

    async def cancel_reservation(self, **kw: Any) -> str:
        return await self._reply("cancel_reservation", kw)


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
    async with db.session() as s:
        token = await s.scalar(select(Token).where(Token.uid == uid))
        assert token is not None, f"token {uid} not stored"
        return token


async def seed_session(
    db: Database, cpo_id: int, cp_id: int, location_id: int, token: Token, uid: str, *, tx: str = "1"
) -> int:
    async with db.session() as s:
        loc = await s.get(Location, location_id)
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
    inv = await credentials.invite(
        running.db, running.platform, simulator.name, allowed_cpo_ids=allowed_cpo_ids
    )
    await simulator.register(inv.versions_url, inv.token_a)
    puller = running.component.tokens
    if puller is not None:
        await puller.wait_idle()
    return inv.partner_id
