"""What the OCPI tests share besides their fixtures and the seeding factory (:mod:`tests.world`): a stored token
by uid (:func:`token_pk`); the handshake of a simulator with the hub (:func:`connect`); a fake gateway answering
commands like a charger (:func:`install_fake_gateway`); a CPO's site with a charger (:func:`seed_site`); the hub's
hosted fleet eMSP with a card (:func:`hosted_fleet_card`); and
:func:`wait_until`, which polls a condition with a deadline and fails loudly (no fixed sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from kernel.clock import CLOCK
from kernel.db.engine import Database
from kernel.models import Fleet, Party, PartyRole, Token
from kernel.timeutil import utcnow
from ocpi import credentials
from simulators.emsp import EmspSimulator
from tests.world.sites import seed_charge_point, seed_cpo, seed_location

if TYPE_CHECKING:
    from tests.ocpi.conftest import RunningHub


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


def install_fake_gateway(hub: RunningHub, answer: str = "ACCEPTED") -> FakeGateway:
    """A :class:`FakeGateway` answering ``answer`` as the hub's gateway for OCPI commands."""
    gateway = FakeGateway(answer)
    hub.services.gateway = gateway  # type: ignore[assignment]  # the command methods only, like a charger
    return gateway


async def seed_site(db: Database) -> tuple[int, int, int]:
    """The CPO NL*CPO (:func:`tests.world.sites.seed_cpo`), its location LOC1 with EVSEs LOC1-E1 and LOC1-E2,
    and a charger there: (cpo, location, charge point)."""
    cpo = await seed_cpo(db)
    loc = await seed_location(db, cpo, "LOC1")
    cp = await seed_charge_point(db, cpo, loc)
    return cpo, loc, cp


async def token_pk(db: Database, uid: str) -> Token:
    async with db.session() as s:
        token = await s.scalar(select(Token).where(Token.uid == uid))
        assert token is not None, f"token {uid} not stored"
        return token


async def connect(
    running: RunningHub, simulator: EmspSimulator, *, allowed_cpo_ids: list[int] | None = None
) -> int:
    """Register ``simulator`` with the hub through the real handshake (token A from an invitation), and wait
    for the tokens pull the registration starts, so that it cannot overwrite what the test does next."""
    inv = await credentials.invite(
        running.db,
        running.platform,
        simulator.name,
        allowed_cpo_ids=allowed_cpo_ids,
        roles=[(simulator.country_code, simulator.party_id, "EMSP")],
    )
    await simulator.register(inv.versions_url, inv.token_a)
    puller = running.component.tokens
    if puller is not None:
        await puller.wait_idle()
    return inv.partner_id


async def hosted_fleet_card(db: Database, uid: str, *, valid: bool = True) -> int:
    """NL*EVH as the demo has it (an eMSP party the operator added, issuing a fleet's tokens: evhub Fleet
    Services, fleet Acme Logistics) and its RFID card ``uid`` (contract NLEVHC0001, ``valid`` or blocked by the
    fleet manager); returns the card's pk."""
    async with db.session() as s:
        party = Party(country_code="NL", party_id="EVH", role=PartyRole.EMSP, name="evhub Fleet Services")
        fleet = Fleet(name="Acme Logistics", currency="EUR")
        s.add_all([party, fleet])
        await s.flush()
        card = Token(
            country_code="NL",
            party_id="EVH",
            uid=uid,
            type="RFID",
            contract_id="NLEVHC0001",
            issuer="evhub Fleet Services",
            valid=valid,
            whitelist="ALLOWED",
            emsp_id=party.id,
            fleet_id=fleet.id,
            last_updated=utcnow(),
        )
        s.add(card)
        await s.flush()
        return card.id
