"""Fleet managers' login: Argon2id passwords, lockout, server-side sessions behind a signed cookie.

The cookie holds ``<random token>.<HMAC>``; the database keeps only the token's SHA-256 (``portal_sessions``),
so a stolen database does not yield live sessions, and logout or expiry ends a session on every node.
The HMAC key is ``EVHUB_PORTAL_SECRET`` or a random key created once per database (``portal_keys``).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import Fleet, FleetManager
from kernel.models.portal import PortalKey, PortalSession
from kernel.security import hash_password, hash_token, needs_rehash, verify_password
from kernel.timeutil import utcnow

COOKIE_NAME = "evhub_portal"
SESSION_TTL = timedelta(hours=8)
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)

# Verified against when the email is unknown, so a wrong email costs as much time as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


class LoginResult(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    LOCKED = "locked"


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


async def authenticate(
    db_session: AsyncSession, email: str, password: str
) -> tuple[LoginResult, FleetManager | None]:
    """Check a login; counts failures and locks the account after :data:`MAX_FAILED_LOGINS`."""
    email = email.strip().lower()
    manager = (
        await db_session.execute(select(FleetManager).where(FleetManager.email == email).with_for_update())
    ).scalar_one_or_none()
    if manager is None:
        verify_password(_DUMMY_HASH, password)
        return LoginResult.INVALID, None
    now = utcnow()
    if manager.locked_until is not None and manager.locked_until > now:
        return LoginResult.LOCKED, None
    if not verify_password(manager.password_hash, password):
        manager.failed_logins = (manager.failed_logins or 0) + 1
        if manager.failed_logins >= MAX_FAILED_LOGINS:
            manager.locked_until = now + LOCKOUT
            manager.failed_logins = 0
            return LoginResult.LOCKED, None
        return LoginResult.INVALID, None
    manager.failed_logins = 0
    manager.locked_until = None
    if needs_rehash(manager.password_hash):
        manager.password_hash = hash_password(password)
    return LoginResult.OK, manager


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
