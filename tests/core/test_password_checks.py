"""Issue 15: Argon2 verification off the event loop in a bounded pool, and the cache of successful checks that
every process shares (kernel/password_checks.py), on the real database."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from kernel import password_checks
from kernel.clock import pinned
from kernel.db.engine import Database
from kernel.models.auth import PasswordCheck
from kernel.password_checks import CheckCache, PasswordChecksBusy, PasswordVerifier
from kernel.security import hash_password
from kernel.timeutil import utcnow
from tests.conftest import PRODUCT_HASHER
from tests.password_kit import CountingVerifier, GatedVerifier

KEY = "a-shared-cache-key-for-tests"


async def test_argon2_at_product_cost_never_blocks_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four verifications at the product's cost (64 MiB, t=3) run in the pool's threads, never the loop's, and
    the loop keeps turning while they run: a ticker counts its turns while checks are pending (on the loop it
    could turn only between two verifications, at most four times). No timing: a loaded box slows both."""
    strong = PRODUCT_HASHER.hash("a-long-secret")
    threads: set[int] = set()
    verify = password_checks.verify_password

    def recording(password_hash: str | None, password: str) -> bool:
        threads.add(threading.get_ident())
        return verify(password_hash, password)

    monkeypatch.setattr(password_checks, "verify_password", recording)
    verifier = PasswordVerifier(workers=2, queue=8)
    turns = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal turns
        while not stop.is_set():
            await asyncio.sleep(0.001)
            turns += verifier.pending > 0

    tick = asyncio.create_task(ticker())
    results = await asyncio.gather(*(verifier.verify(strong, pw) for pw in ("a-long-secret", "no", "x", "y")))
    stop.set()
    await tick
    verifier.close()
    assert results == [True, False, False, False]
    assert threads and threading.get_ident() not in threads, threads
    assert turns > 20, turns


async def test_a_saturated_pool_refuses_at_once_with_retry_after() -> None:
    verifier = GatedVerifier(workers=1, queue=1)
    cheap = hash_password("pw-1234567890")
    held = [asyncio.create_task(verifier.verify(cheap, "pw-1234567890")) for _ in range(2)]
    await asyncio.sleep(0)
    assert verifier.saturated and verifier.pending == 2
    started = time.monotonic()
    with pytest.raises(PasswordChecksBusy) as busy:
        await verifier.verify(cheap, "pw-1234567890")
    assert time.monotonic() - started < 0.1
    assert 1 <= busy.value.retry_after <= 120
    verifier.gate.set()
    assert await asyncio.gather(*held) == [True, True]
    assert verifier.pending == 0 and not verifier.saturated
    assert await verifier.verify(cheap, "pw-1234567890")
    verifier.close()


async def test_a_success_is_shared_by_every_process_and_secret_at_rest(db: Database) -> None:
    """Two caches with the same key (two `evhub serve` processes): the second needs no Argon2 run. The row holds
    neither the password nor an unkeyed hash of it; a wrong password always pays Argon2 and never evicts."""
    stored = hash_password("charger-secret-1")
    first, second = CountingVerifier(), CountingVerifier()
    a = CheckCache(first, db, key=KEY, ttl=3600)
    b = CheckCache(second, db, key=KEY, ttl=3600)
    assert await a.check("charger:CP1", stored, "charger-secret-1")
    assert await a.check("charger:CP1", stored, "charger-secret-1")
    assert first.runs == 1  # the second check came from memory
    assert await b.check("charger:CP1", stored, "charger-secret-1")
    assert second.runs == 0  # from the shared table
    assert not await b.check("charger:CP1", stored, "a-guess")
    assert second.runs == 1
    assert await CheckCache(CountingVerifier(), db, key=KEY).check("charger:CP1", stored, "charger-secret-1")
    async with db.session() as s:
        row = (await s.execute(select(PasswordCheck))).scalar_one()
    text = " ".join((row.identity, row.hash_fingerprint, row.mac))
    assert "charger-secret-1" not in text
    assert hashlib.sha256(b"charger-secret-1").hexdigest() not in text
    assert row.hash_fingerprint == hashlib.sha256(stored.encode()).hexdigest()
    # Without the key (another key, or a process's random one) the row proves nothing: Argon2 runs.
    other = CountingVerifier()
    assert await CheckCache(other, db, key="another-key-0123456789").check(
        "charger:CP1", stored, "charger-secret-1"
    )
    unkeyed = CountingVerifier()
    assert await CheckCache(unkeyed, db).check("charger:CP1", stored, "charger-secret-1")
    assert (other.runs, unkeyed.runs) == (1, 1)


async def test_a_new_password_or_hash_and_expiry_invalidate(db: Database) -> None:
    old = hash_password("old-password-123")
    verifier = CountingVerifier()
    cache = CheckCache(verifier, db, key=KEY, ttl=3600)
    assert await cache.check("charger:CP2", old, "old-password-123")
    new = hash_password("new-password-456")
    assert not await cache.check("charger:CP2", new, "old-password-123")  # the old password, the new hash
    assert await cache.check("charger:CP2", new, "new-password-456")
    assert verifier.runs == 3
    # A process that remembered the old hash (in memory) does not accept the old password against the new hash.
    assert not await CheckCache(CountingVerifier(), db, key=KEY).check("charger:CP2", new, "old-password-123")
    runs = verifier.runs
    with pinned(utcnow() + timedelta(seconds=3601)):
        assert await cache.check("charger:CP2", new, "new-password-456")
    assert verifier.runs == runs + 1  # expired: verified again
    assert not await cache.check("charger:CP2", None, "new-password-456")
    assert not await cache.check("charger:CP2", "", "new-password-456")
