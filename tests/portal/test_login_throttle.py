"""Issue 15: the portal's login throttling — per client, per (account, client) and a slow per-account backoff
that a manager's known devices do not feel; unknown e-mails verified (off the loop) and throttled the same;
parallel guesses counted before they are checked; a saturated password pool is 503 with Retry-After."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from evhub.app import create_app
from kernel.clock import pinned
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.settings import load_settings
from kernel.timeutil import utcnow
from portal import login
from portal.component import PortalComponent
from portal.login import LoginResult, Signer
from tests.password_kit import CountingVerifier, GatedVerifier
from tests.portal.helpers import login as form_login
from tests.world.fleets import PASSWORD, add_fleet_with_manager, base_world

SIGNER = Signer(b"a-test-signing-key-0123456789")
BOSS = "boss@acme.test"


async def _world(db: Database) -> None:
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme", BOSS)


async def _try(db: Database, verifier: login.PasswordVerifier, email: str, password: str, client: str):
    return await login.authenticate(db, SIGNER, verifier, email, password, client)


async def test_one_client_is_throttled_for_every_account_and_others_are_not(db: Database) -> None:
    await _world(db)
    verifier = CountingVerifier(workers=1, queue=64)
    for i in range(login.CLIENT_MAX_FAILURES):
        outcome = await _try(db, verifier, f"nobody{i}@acme.test", "guess", "198.51.100.7")
        assert outcome.result is LoginResult.INVALID
    assert verifier.runs == login.CLIENT_MAX_FAILURES  # unknown e-mails cost an Argon2 run too
    refused = await _try(db, verifier, BOSS, PASSWORD, "198.51.100.7")
    assert refused.result is LoginResult.THROTTLED and 0 < refused.retry_after <= 15 * 60
    assert verifier.runs == login.CLIENT_MAX_FAILURES  # refused before any check
    assert (await _try(db, verifier, BOSS, PASSWORD, "203.0.113.9")).result is LoginResult.OK
    # An IPv6 client is throttled by its /64: another address in it is the same client.
    for _ in range(login.PAIR_MAX_FAILURES):
        await _try(db, verifier, BOSS, "guess", "2001:db8:1:2::10")
    assert (await _try(db, verifier, BOSS, PASSWORD, "2001:db8:1:2::99")).result is LoginResult.LOCKED
    assert (await _try(db, verifier, BOSS, PASSWORD, "2001:db8:1:3::99")).result is LoginResult.OK
    with pinned(utcnow() + login.CLIENT_WINDOW + timedelta(seconds=1)):
        assert (await _try(db, verifier, BOSS, PASSWORD, "198.51.100.7")).result is LoginResult.OK


async def test_the_account_backoff_spares_known_clients_and_covers_unknown_emails(db: Database) -> None:
    await _world(db)
    verifier = CountingVerifier(workers=1, queue=64)
    assert (await _try(db, verifier, BOSS, PASSWORD, "192.0.2.1")).result is LoginResult.OK  # a known device
    for email in (BOSS, "ghost@acme.test"):
        for i in range(login.ACCOUNT_FREE_FAILURES):
            outcome = await _try(db, verifier, email, "guess", f"10.1.{i}.1")  # a distributed guesser
            assert outcome.result is LoginResult.INVALID
        over = await _try(db, verifier, email, "guess", "10.2.0.1")
        assert over.result is LoginResult.INVALID
        slowed = await _try(db, verifier, email, PASSWORD, "10.2.0.2")
        assert slowed.result is LoginResult.THROTTLED and 1 <= slowed.retry_after <= 2
        if email == BOSS:  # the manager's own device is not slowed down by the guesser
            assert (await _try(db, verifier, BOSS, PASSWORD, "192.0.2.1")).result is LoginResult.OK
    with pinned(utcnow() + timedelta(seconds=3)):
        assert (await _try(db, verifier, BOSS, PASSWORD, "10.2.0.2")).result is LoginResult.OK


async def test_parallel_guesses_are_counted_before_they_are_checked(db: Database) -> None:
    await _world(db)
    verifier = CountingVerifier(workers=2, queue=64)
    outcomes = await asyncio.gather(
        *(_try(db, verifier, BOSS, f"guess {i}", "198.51.100.20") for i in range(12))
    )
    results = [o.result for o in outcomes]
    assert results.count(LoginResult.INVALID) == login.PAIR_MAX_FAILURES - 1
    assert results.count(LoginResult.LOCKED) == 12 - (login.PAIR_MAX_FAILURES - 1)
    assert verifier.runs == login.PAIR_MAX_FAILURES


async def test_http_answers_429_and_503_with_retry_after(db: Database) -> None:
    await _world(db)
    settings = load_settings(database_url=db.url, log_level="WARNING", _env_file=None)
    hub = Hub(settings=settings, db=db, node_name="portal-test")
    app = create_app(hub)
    hub.app = app
    component = PortalComponent(scan_interval=3600)
    component.install(hub)
    assert component.state is not None
    transport = httpx.ASGITransport(app=app, client=("198.51.100.30", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:
        gated = GatedVerifier(workers=1, queue=1)
        component.state.passwords = gated
        holders = [asyncio.create_task(gated.verify("$argon2id$bogus", "x")) for _ in range(2)]
        await asyncio.sleep(0)
        busy = await form_login(client, BOSS)
        assert busy.status_code == 503 and "busy" in busy.text
        assert 1 <= int(busy.headers["retry-after"]) <= 120
        gated.gate.set()
        await asyncio.gather(*holders)
        for _ in range(login.PAIR_MAX_FAILURES - 1):
            assert (await form_login(client, BOSS, "guess")).status_code == 401  # the 503 was not counted
        locked = await form_login(client, BOSS, "guess")
        assert locked.status_code == 429 and "15 minutes" in locked.text and "another device" in locked.text
        assert int(locked.headers["retry-after"]) == 15 * 60
        gated.close()
