"""Password verification off the event loop, bounded, and a cache of successful checks every process shares.

Argon2id costs ~150 ms of CPU by design. Run on the event loop it stalls every charger of the process, so
:class:`PasswordVerifier` runs it in a small thread pool (argon2-cffi releases the GIL while it hashes) behind a
bounded queue: when ``workers + queue`` checks are already waiting, :meth:`PasswordVerifier.verify` raises
:class:`PasswordChecksBusy` at once, with a Retry-After estimate, instead of letting the caller time out. The
OCPP upgrade turns that into HTTP 503 (admission control); the portal into its own 503 page.

:class:`CheckCache` remembers successful checks so that a reconnect storm (or a restart of every process)
costs at most one Argon2 verification per charger and TTL. A remembered check is a row of
``password_checks`` (and a copy in this process's memory): the identity, a SHA-256 fingerprint of the stored
hash, and ``HMAC-SHA256(key, identity | stored hash | password)``, with an expiry.

Threat model:

* The database leaks (backup, SQL injection): the attacker sees Argon2 hashes and the HMACs. Without the key
  (``EVHUB_PASSWORD_CACHE_KEY``, in the environment, never in the database) an HMAC is no faster to guess
  against than the Argon2 hash next to it; with the key as well, a guess costs one HMAC instead of Argon2 —
  the price of a cache, so the key is a secret like the others, and the TTL bounds how long a row helps.
  No plaintext and no unkeyed fast hash of a password is stored anywhere.
* Someone who can write the table cannot create an entry that passes without the key.
* A changed password or hash (``chargers update --password``, ``block`` adds a prefix, a rehash) changes the
  HMAC's input, so the old entry stops matching in every process at once: nothing to invalidate by hand.
* Without a configured key every process draws a random one: entries then only help the process that wrote
  them (each process verifies each charger once), which is still correct.
* A wrong password never touches an entry (an attacker cannot evict a charger's entry) and always pays the
  full Argon2 verification.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from kernel.coalesce import Coalescer
from kernel.db.engine import Database
from kernel.models.auth import PasswordCheck
from kernel.security import hash_password, verify_password
from kernel.timeutil import utcnow


class PasswordChecksBusy(Exception):
    """Every thread is busy and the queue is full: try again after :attr:`retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"password checks are saturated; retry after {retry_after} s")
        self.retry_after = retry_after


class PasswordVerifier:
    """Argon2 verification in ``workers`` threads with at most ``queue`` more checks waiting."""

    def __init__(self, workers: int = 2, queue: int = 256, *, name: str = "argon2") -> None:
        self.workers = workers
        self.limit = workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0
        self._mean_seconds = 0.15  # running mean of one verification, for Retry-After

    @property
    def pending(self) -> int:
        """Checks running or waiting."""
        return self._pending

    @property
    def saturated(self) -> bool:
        return self._pending >= self.limit

    def retry_after(self) -> int:
        """Seconds until the queue has drained, roughly: 1 to 60, with jitter so a storm comes back spread."""
        drain = self._pending * self._mean_seconds / self.workers
        base = max(1, min(60, math.ceil(drain)))
        return base + random.randint(0, base)

    def _release(self, started: float, _future: Future[bool]) -> None:
        with self._lock:
            self._pending -= 1
            if started:
                elapsed = time.monotonic() - started
                self._mean_seconds = 0.9 * self._mean_seconds + 0.1 * elapsed

    def _run(self, password_hash: str | None, password: str, box: list[float]) -> bool:
        box.append(time.monotonic())
        return verify_password(password_hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """``verify_password`` in a worker thread; :class:`PasswordChecksBusy` when saturated."""
        with self._lock:
            if self._pending >= self.limit:
                busy = True
            else:
                busy = False
                self._pending += 1
        if busy:
            raise PasswordChecksBusy(self.retry_after())
        box: list[float] = []
        try:
            future = self._executor.submit(self._run, password_hash, password, box)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        future.add_done_callback(lambda f: self._release(box[0] if box else 0.0, f))
        return await asyncio.wrap_future(future)

    async def hash(self, password: str) -> str:
        """``hash_password`` in a worker thread (a rehash after login), outside the queue's bound."""
        return await asyncio.wrap_future(self._executor.submit(hash_password, password))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class _Entry:
    fingerprint: str
    mac: str
    expires_at: datetime


def fingerprint(password_hash: str) -> str:
    """SHA-256 (hex) of a stored hash: which hash an entry was made for (the hash is not a secret to us)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


class CheckCache:
    """Successful password checks, remembered in memory and in ``password_checks`` for every process."""

    def __init__(
        self,
        verifier: PasswordVerifier,
        db: Database | None = None,
        *,
        key: str = "",
        ttl: float = 7 * 24 * 3600,
        memory_limit: int = 100_000,
        db_gate: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        """``db_gate`` (optional) wraps each database access, e.g. the gateway's limit on opening connections."""
        self.verifier = verifier
        self.db = db
        self._key = key.encode() if key else os.urandom(32)
        self.ttl = timedelta(seconds=ttl)
        self._memory: dict[str, _Entry] = {}
        self._memory_limit = memory_limit
        self._db_gate = db_gate if db_gate is not None else contextlib.nullcontext
        # a storm's lookups and stores share a few batched statements (see kernel.coalesce)
        self._loads: Coalescer[str, _Entry | None] = Coalescer(self._load_many, max_batch=500)
        self._stores: Coalescer[tuple[str, _Entry], None] = Coalescer(self._store_many, max_batch=500)

    def _mac(self, identity: str, password_hash: str, password: str) -> str:
        message = b"\0".join(
            (b"evhub-password-check-v1", identity.encode(), password_hash.encode(), password.encode())
        )
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def check(self, identity: str, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches ``password_hash``: from a remembered check when there is one, else
        by Argon2 in the verifier (which may raise :class:`PasswordChecksBusy`); a success is remembered."""
        if not password_hash:
            return False
        fp = fingerprint(password_hash)
        mac = self._mac(identity, password_hash, password)
        now = utcnow()
        entry = self._memory.get(identity)
        if entry is None or not self._matches(entry, fp, mac, now):
            entry = await self._load(identity)
            if entry is not None and self._matches(entry, fp, mac, now):
                self._remember(identity, entry)
                return True
        else:
            return True
        if not await self.verifier.verify(password_hash, password):
            return False
        entry = _Entry(fp, mac, now + self.ttl)
        self._remember(identity, entry)
        await self._store(identity, entry)
        return True

    @staticmethod
    def _matches(entry: _Entry, fp: str, mac: str, now: datetime) -> bool:
        return entry.expires_at > now and entry.fingerprint == fp and hmac.compare_digest(entry.mac, mac)

    def _remember(self, identity: str, entry: _Entry) -> None:
        if len(self._memory) >= self._memory_limit and identity not in self._memory:
            self._memory.pop(next(iter(self._memory)))
        self._memory[identity] = entry

    async def _load(self, identity: str) -> _Entry | None:
        if self.db is None:
            return None
        return await self._loads.submit(identity)

    async def _load_many(self, identities: list[str]) -> list[_Entry | None]:
        assert self.db is not None
        pc = PasswordCheck
        if self.db.dialect == "postgresql":
            match = pc.identity == any_(
                bindparam("ids", list(set(identities)), type_=postgresql.ARRAY(String))
            )
        else:  # batches stay below SQLite's variable limit (max_batch 500)
            match = pc.identity.in_(set(identities))
        async with self._db_gate(), self.db.session() as db_session:
            rows = await db_session.execute(
                select(pc.identity, pc.hash_fingerprint, pc.mac, pc.expires_at).where(match)
            )
            found = {row.identity: _Entry(row.hash_fingerprint, row.mac, row.expires_at) for row in rows}
        return [found.get(identity) for identity in identities]

    async def _store(self, identity: str, entry: _Entry) -> None:
        if self.db is None:
            return
        await self._stores.submit((identity, entry))

    async def _store_many(self, entries: list[tuple[str, _Entry]]) -> list[None]:
        assert self.db is not None
        latest = dict(entries)  # one row per identity and statement (ON CONFLICT may not touch a row twice)
        values = [
            {
                "identity": identity,
                "hash_fingerprint": entry.fingerprint,
                "mac": entry.mac,
                "expires_at": entry.expires_at,
            }
            for identity, entry in latest.items()
        ]
        stmt: postgresql.Insert | sqlite.Insert
        stmt = (postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert)(PasswordCheck)
        stmt = stmt.on_conflict_do_update(
            index_elements=[PasswordCheck.identity],
            set_={k: stmt.excluded[k] for k in ("hash_fingerprint", "mac", "expires_at")},
        )
        async with self._db_gate(), self.db.session() as db_session:
            await db_session.execute(stmt, values)
        return [None] * len(entries)
