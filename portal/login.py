"""Fleet managers' login: Argon2id passwords off the event loop, login throttling, server-side sessions behind a
signed cookie.

The cookie holds ``<random token>.<HMAC>``; the database keeps only the token's SHA-256 (``portal_sessions``),
so a stolen database does not yield live sessions, and logout or expiry ends a session on every node.
The HMAC key is ``EVHUB_PORTAL_SECRET`` or a random key created once per database (``portal_keys``).

Passwords are verified in the portal's own bounded thread pool (:class:`kernel.password_checks.PasswordVerifier`,
one thread and a short queue, apart from the chargers' pool), also for unknown e-mails (against a dummy hash,
so they cost the same); when it is saturated the login answers 503 with Retry-After.

Throttling (``login_throttles``, shared by every process; every attempt is counted *before* its password is
checked, so parallel guesses cannot slip past, and a success gives its count back):

* per client address (IPv4 address, IPv6 /64): :data:`CLIENT_MAX_FAILURES` failures in :data:`CLIENT_WINDOW`
  refuse that client for every account until the window has passed;
* per (account, client): :data:`PAIR_MAX_FAILURES` failures lock that account *from that client* for
  :data:`LOCKOUT`; the manager can still log in from anywhere else, so a guesser cannot lock a manager out;
* per account: beyond :data:`ACCOUNT_FREE_FAILURES` failures from all clients together each further failure
  makes the account wait longer (1 s, 2 s, 4 s ... up to :data:`ACCOUNT_MAX_BACKOFF`) — a slow global brake
  against a distributed guesser, which clients this manager has logged in from before (in the last
  :data:`KNOWN_CLIENT_TTL`) do not feel.

Unknown e-mails are throttled the same way, under a keyed hash of the address (never the address itself).
Every refusal says how long to wait (429 with Retry-After).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import ipaddress
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import Fleet, FleetManager
from kernel.models.auth import LoginThrottle
from kernel.models.portal import PortalKey, PortalSession
from kernel.password_checks import PasswordChecksBusy, PasswordVerifier
from kernel.security import hash_password, hash_token, needs_rehash
from kernel.timeutil import utcnow

COOKIE_NAME = "evhub_portal"
SESSION_TTL = timedelta(hours=8)

PAIR_MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
CLIENT_MAX_FAILURES = 30
CLIENT_WINDOW = timedelta(minutes=15)
ACCOUNT_FREE_FAILURES = 20
ACCOUNT_WINDOW = timedelta(hours=1)
ACCOUNT_MAX_BACKOFF = timedelta(minutes=15)
KNOWN_CLIENT_TTL = timedelta(days=30)

# Verified against when the email is unknown, so a wrong email costs as much time as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def portal_verifier() -> PasswordVerifier:
    """The portal's own password pool: one thread, a short queue (logins never compete with chargers)."""
    return PasswordVerifier(workers=1, queue=8, name="portal-argon2")


class LoginResult(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    LOCKED = "locked"  # this account, from this client
    THROTTLED = "throttled"  # this client, or this account's global backoff
    BUSY = "busy"  # the password pool is saturated


@dataclass(frozen=True)
class LoginOutcome:
    result: LoginResult
    manager: FleetManager | None = None
    retry_after: int = 0
    """Seconds to wait before the next attempt (LOCKED, THROTTLED, BUSY)."""


@dataclass(frozen=True)
class Principal:
    """The logged-in manager, as every request of the portal sees it."""

    manager_id: int
    email: str
    fleet_id: int
    fleet_name: str
    currency: str
    csrf_token: str


class Signer:
    """HMAC-SHA256 signatures for cookie values."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, value: str) -> str:
        mac = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return f"{value}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def unsign(self, signed: str | None) -> str | None:
        if not signed or "." not in signed:
            return None
        value, _, _mac = signed.rpartition(".")
        return value if hmac.compare_digest(self.sign(value), signed) else None

    def digest(self, purpose: str, value: str) -> str:
        """A keyed hash of ``value`` (hex, 32 characters) for ``purpose``: lookups that never store it."""
        message = f"{purpose}\0{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]


async def load_signer(db: Database, secret: str = "") -> Signer:
    """The portal's signer: ``secret`` (``EVHUB_PORTAL_SECRET``, from the settings) or the database's own key
    (created on first use)."""
    if secret:
        return Signer(secret.encode())
    async with db.session() as db_session:
        row = await db_session.get(PortalKey, "cookie")
        if row is not None:
            return Signer(row.value.encode())
    try:
        async with db.session() as db_session:
            db_session.add(PortalKey(name="cookie", value=secrets.token_urlsafe(48)))
    except IntegrityError:  # another node created it first
        pass
    async with db.session() as db_session:
        row = await db_session.get(PortalKey, "cookie")
        assert row is not None
        return Signer(row.value.encode())


def client_key(host: str | None) -> str:
    """The throttling key of a client address: the IPv4 address, the IPv6 /64 (one subscriber's block)."""
    try:
        address = ipaddress.ip_address((host or "").strip())
    except ValueError:
        return f"other:{(host or '')[:60]}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True)
class _Keys:
    client: str
    account: str
    pair: str
    known: str

    @property
    def counted(self) -> list[str]:
        return sorted((self.client, self.account, self.pair))  # one lock order for every process


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


async def _reserve(db: Database, keys: _Keys, now: datetime) -> tuple[LoginOutcome | None, int]:
    """Count this attempt as a failure before its password is checked; a refusal if a key is blocked already.

    Returns (refusal or None, the pair's failures counting this attempt)."""
    async with db.session() as db_session:
        rows = await _locked_rows(db, db_session, keys.counted, now)
        client, account, pair = rows[keys.client], rows[keys.account], rows[keys.pair]
        if pair.blocked_until is not None and pair.blocked_until > now:
            return LoginOutcome(LoginResult.LOCKED, retry_after=_seconds(pair.blocked_until - now)), 0
        if client.blocked_until is not None and client.blocked_until > now:
            return LoginOutcome(LoginResult.THROTTLED, retry_after=_seconds(client.blocked_until - now)), 0
        known = await db_session.get(LoginThrottle, keys.known)
        is_known = known is not None and known.expires_at > now
        if not is_known and account.blocked_until is not None and account.blocked_until > now:
            return LoginOutcome(LoginResult.THROTTLED, retry_after=_seconds(account.blocked_until - now)), 0
        client.failures += 1
        client.expires_at = now + CLIENT_WINDOW
        if client.failures >= CLIENT_MAX_FAILURES:
            client.blocked_until = now + CLIENT_WINDOW
        pair.failures += 1
        pair.expires_at = now + LOCKOUT
        if pair.failures >= PAIR_MAX_FAILURES:
            pair.blocked_until = now + LOCKOUT
        account.failures += 1
        account.expires_at = now + ACCOUNT_WINDOW
        if account.failures > ACCOUNT_FREE_FAILURES:
            backoff = min(
                2 ** min(account.failures - ACCOUNT_FREE_FAILURES - 1, 20),
                ACCOUNT_MAX_BACKOFF.total_seconds(),
            )
            account.blocked_until = now + timedelta(seconds=backoff)
        return None, pair.failures


async def _locked_rows(
    db: Database, db_session: AsyncSession, keys: list[str], now: datetime
) -> dict[str, LoginThrottle]:
    """The throttle rows of ``keys``, created when missing, locked for update; an expired row starts afresh."""
    fresh = [{"key": k, "failures": 0, "blocked_until": None, "expires_at": now} for k in keys]
    stmt: postgresql.Insert | sqlite.Insert
    if db.dialect == "postgresql":
        stmt = postgresql.insert(LoginThrottle).values(fresh).on_conflict_do_nothing(index_elements=["key"])
    else:
        stmt = sqlite.insert(LoginThrottle).values(fresh).on_conflict_do_nothing(index_elements=["key"])
    await db_session.execute(stmt)
    found = (
        await db_session.execute(
            select(LoginThrottle)
            .where(LoginThrottle.key.in_(keys))
            .order_by(LoginThrottle.key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalars()
    rows = {row.key: row for row in found}
    for row in rows.values():
        if row.expires_at <= now and (row.blocked_until is None or row.blocked_until <= now):
            row.failures = 0
            row.blocked_until = None
    return rows


async def _give_back(db: Database, keys: _Keys, now: datetime) -> None:
    """A success: this attempt was not a failure after all; the pair starts afresh, the client becomes known."""
    async with db.session() as db_session:
        rows = await _locked_rows(db, db_session, keys.counted, now)
        for key in (keys.client, keys.account):
            rows[key].failures = max(0, rows[key].failures - 1)
        rows[keys.pair].failures = 0
        rows[keys.pair].blocked_until = None
        known = await db_session.get(LoginThrottle, keys.known)
        if known is None:
            db_session.add(LoginThrottle(key=keys.known, failures=0, expires_at=now + KNOWN_CLIENT_TTL))
        else:
            known.expires_at = now + KNOWN_CLIENT_TTL
        await db_session.execute(delete(LoginThrottle).where(LoginThrottle.expires_at < now - ACCOUNT_WINDOW))


async def authenticate(
    db: Database,
    signer: Signer,
    verifier: PasswordVerifier,
    email: str,
    password: str,
    client: str | None,
) -> LoginOutcome:
    """Check a login from the client address ``client``, throttled (see the module's docstring); the password
    is checked in ``verifier``'s threads, never on the event loop and never inside a transaction."""
    email = email.strip().lower()
    now = utcnow()
    async with db.session() as db_session:
        manager = (
            await db_session.execute(select(FleetManager).where(FleetManager.email == email))
        ).scalar_one_or_none()
    account = f"m{manager.id}" if manager is not None else "u" + signer.digest("login-email", email)
    where = client_key(client)
    keys = _Keys(
        client=f"client:{where}",
        account=f"account:{account}",
        pair=f"pair:{account}:{where}",
        known=f"known:{account}:{where}",
    )
    refused, pair_failures = await _reserve(db, keys, now)
    if refused is not None:
        return refused
    try:
        ok = await verifier.verify(manager.password_hash if manager is not None else _DUMMY_HASH, password)
    except PasswordChecksBusy as busy:
        await _give_back_count(db, keys, now)
        return LoginOutcome(LoginResult.BUSY, retry_after=busy.retry_after)
    if manager is None or not ok:
        if pair_failures >= PAIR_MAX_FAILURES:
            return LoginOutcome(LoginResult.LOCKED, retry_after=_seconds(LOCKOUT))
        return LoginOutcome(LoginResult.INVALID)
    await _give_back(db, keys, now)
    if needs_rehash(manager.password_hash):
        new_hash = await verifier.hash(password)
        async with db.session() as db_session:
            row = await db_session.get(FleetManager, manager.id)
            if row is not None and row.password_hash == manager.password_hash:
                row.password_hash = new_hash
    return LoginOutcome(LoginResult.OK, manager)


async def _give_back_count(db: Database, keys: _Keys, now: datetime) -> None:
    """An attempt that was never checked (the pool was saturated) is not a failure: undo its count."""
    async with db.session() as db_session:
        rows = await _locked_rows(db, db_session, keys.counted, now)
        for row in rows.values():
            row.failures = max(0, row.failures - 1)
        for key, limit in ((keys.client, CLIENT_MAX_FAILURES), (keys.pair, PAIR_MAX_FAILURES)):
            if rows[key].failures < limit:
                rows[key].blocked_until = None


async def open_login_session(db_session: AsyncSession, manager: FleetManager) -> str:
    """A new login session; returns the raw token for the cookie (to be signed)."""
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    await db_session.execute(delete(PortalSession).where(PortalSession.expires_at < now))
    db_session.add(
        PortalSession(
            token_hash=hash_token(raw),
            manager_id=manager.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    return raw


async def load_principal(db_session: AsyncSession, raw: str) -> Principal | None:
    """The manager behind a session token, or None when unknown, expired or locked."""
    row = (
        await db_session.execute(
            select(PortalSession, FleetManager, Fleet)
            .join(FleetManager, FleetManager.id == PortalSession.manager_id)
            .join(Fleet, Fleet.id == FleetManager.fleet_id)
            .where(PortalSession.token_hash == hash_token(raw))
        )
    ).first()
    if row is None:
        return None
    portal_session, manager, fleet = row
    now = utcnow()
    if portal_session.expires_at <= now or (manager.locked_until is not None and manager.locked_until > now):
        return None
    return Principal(
        manager_id=manager.id,
        email=manager.email,
        fleet_id=fleet.id,
        fleet_name=fleet.name,
        currency=fleet.currency,
        csrf_token=portal_session.csrf_token,
    )


async def end_login_session(db_session: AsyncSession, raw: str) -> None:
    """Log out: delete the server-side session behind ``raw``, so its cookie stops working everywhere."""
    await db_session.execute(delete(PortalSession).where(PortalSession.token_hash == hash_token(raw)))
