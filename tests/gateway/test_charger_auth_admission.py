"""Issue 15: admission control at the OCPP upgrade. A saturated password pool, an exhausted database pool or a
database that does not answer is HTTP 503 with Retry-After at once, never a timeout; a charger whose check is
remembered still gets in while the pool is saturated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from tests.gateway.conftest import Seed, basic, gateway_settings, open_client
from tests.password_kit import GatedVerifier

CLIENT_PATIENCE = 60.0
"""The client's opening-handshake timeout: far above the gateway's upgrade budget (6 s) and websockets' own
10 s handshake timeout on the server, so an upgrade left unanswered shows as the server closing it without an
HTTP answer (not :class:`InvalidStatus`), never as this client giving up first on a loaded box."""


async def _refused(gw: Gateway, identity: str) -> InvalidStatus:
    """The HTTP answer refusing ``identity``'s upgrade (fails if it is admitted, or closed without an answer)."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(
            f"ws://127.0.0.1:{gw.port}/ocpp/{identity}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=basic(identity),
            open_timeout=CLIENT_PATIENCE,
        ):
            pass
    return info.value


async def test_a_saturated_password_pool_answers_503_and_remembered_chargers_get_in(gateway: Gateway) -> None:
    warm = await open_client(gateway, "CP16", "ocpp1.6")
    await warm.close()
    gated = GatedVerifier(workers=1, queue=1)
    gateway.passwords.checks.verifier = gated
    holders = [asyncio.create_task(gated.verify("$argon2id$bogus", "x")) for _ in range(2)]
    await asyncio.sleep(0)
    try:
        refused = await _refused(gateway, "CP201")
        # "at once", whatever the load: refused by the verifier's bound without queueing a check behind the held
        # ones (its pending checks are still the two holders), not by the upgrade budget running out while it
        # waited (that 503 says "busy admitting other chargers")
        assert refused.response.status_code == 503
        assert refused.response.body == b"password checks are saturated; retry later\n"
        assert gated.pending == 2
        assert 1 <= int(refused.response.headers["Retry-After"]) <= 120
        # CP16's check is remembered: no Argon2 needed, so it is admitted.
        again = await open_client(gateway, "CP16", "ocpp1.6")
        await again.close()
    finally:
        gated.gate.set()
        await asyncio.gather(*holders)
    admitted = await open_client(gateway, "CP201", "ocpp2.0.1")
    await admitted.close()
    gated.close()


async def test_an_exhausted_database_pool_answers_503(seeded: Seed, database_url: str) -> None:
    db = Database(database_url, pool_size=2, max_overflow=0, pool_timeout=1)
    gw = Gateway(gateway_settings(database_url), db, "node-pool")
    await gw.start("127.0.0.1", 0)
    try:
        async with AsyncExitStack() as held:
            while not db.pool_saturated():
                await held.enter_async_context(db.engine.connect())
            refused = await _refused(gw, "CP16")
            assert refused.response.status_code == 503 and "Retry-After" in refused.response.headers
        client = await open_client(gw, "CP16", "ocpp1.6")
        await client.close()
    finally:
        await gw.stop()
        await db.dispose()


@pytest.fixture
async def unreachable_db() -> AsyncIterator[Database]:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_timeout=1)
    yield db
    await db.dispose()


async def test_a_database_that_does_not_answer_is_503_not_500(
    gateway: Gateway, unreachable_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The charger store's database stops answering (a server nobody listens on): 503 with Retry-After and
    one warning line without a traceback, where HTTP 500 used to be."""
    gateway.chargers.db = unreachable_db
    refused = await _refused(gateway, "CP16")
    assert refused.response.status_code == 503
    assert 5 <= int(refused.response.headers["Retry-After"]) <= 10
    warnings = [r for r in caplog.records if "refused with 503" in r.getMessage()]
    assert warnings and all(r.exc_info is None for r in warnings)  # one line, no traceback


async def test_a_queue_of_connections_going_online_answers_503(gateway: Gateway) -> None:
    """Admitted connections are marked online at most half the pool at a time; while too many already wait for
    that, new upgrades are refused with 503 instead of piling onto the database pool."""
    gateway.opening.waiting = gateway.max_opening_waiting
    try:
        refused = await _refused(gateway, "CP16")
        assert refused.response.status_code == 503 and "Retry-After" in refused.response.headers
    finally:
        gateway.opening.waiting = 0
    clients = [
        await open_client(gateway, ident, proto)
        for ident, proto in (("CP16", "ocpp1.6"), ("CP201", "ocpp2.0.1"))
    ]
    assert gateway.opening.waiting == 0
    for client in clients:
        await client.close()


async def test_an_upgrade_queued_past_its_budget_answers_503_not_a_timeout(gateway: Gateway) -> None:
    """The opening gate's slots all held (a storm ahead of it): the queued upgrade is answered 503 with
    Retry-After when its budget runs out, before any opening-handshake timeout: an answer, not a timeout."""
    gateway.upgrade_budget = 0.5
    async with AsyncExitStack() as held:
        for _ in range(gateway.opening._slots._value):
            await held.enter_async_context(gateway.opening())
        refused = await _refused(gateway, "CP16")
        # an HTTP answer (not the handshake timeout: see CLIENT_PATIENCE), and the budget's: it gave up waiting
        # for the held slots, whatever the load (it cannot have been admitted or refused otherwise: no slot)
        assert refused.response.status_code == 503
        assert refused.response.body == b"the hub is busy admitting other chargers; retry later\n"
        assert int(refused.response.headers["Retry-After"]) >= 1
    admitted = await open_client(gateway, "CP16", "ocpp1.6")  # the slots free again: admitted
    await admitted.close()
