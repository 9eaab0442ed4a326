"""Authentication of the operators' REST API (``/api``): ``Authorization: Bearer <api key>``.

Keys are random, shown once, stored as SHA-256 and looked up by that hash, then compared in constant time.
A key belongs to the hub operator (sees everything) or to one CPO (``Principal.cpo_id``): endpoints narrow
what they return with :func:`principal` / :meth:`Principal.sees`. ``EVHUB_API_AUTH=false`` turns the check
off for a closed network (never the default).

The check itself runs in the app's middleware (every ``/api/`` request); :data:`api_key_scheme` only declares
it to OpenAPI as the ``ApiKey`` bearer scheme (routers depend on :func:`api_key`), so the documentation's
"Authorize" / "Try it out" send the key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import ApiKey, Party, PartyRole
from kernel.security import hash_token, new_token, tokens_equal
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a named key of the hub operator (``cpo_id`` None) or of one CPO."""

    key_name: str
    cpo_id: int | None

    @property
    def is_hub(self) -> bool:
        return self.cpo_id is None

    def sees(self, cpo_id: int | None) -> bool:
        return self.cpo_id is None or self.cpo_id == cpo_id


HUB_OPERATOR = Principal("(auth off)", None)


async def authenticate(db: Database, header: str | None) -> Principal | None:
    """The principal of an ``Authorization: Bearer`` header, or None."""
    if not header or not header.lower().startswith("bearer "):
        return None
    key = header[7:].strip()
    if not key:
        return None
    digest = hash_token(key)
    async with db.session() as db_session:
        row = await db_session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        if row is None or row.revoked or not tokens_equal(row.key_hash, digest):
            return None
        row.last_used_at = utcnow()
        return Principal(row.name, row.cpo_id)


def principal(request: Request) -> Principal:
    """The caller of an ``/api`` request (set by the app's middleware)."""
    return getattr(request.state, "principal", HUB_OPERATOR)


api_key_scheme = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="evh_...",
    description="An API key from `evhub api-keys add` (a hub operator's key, or a CPO's key with `--cpo`)",
    auto_error=False,  # the middleware has refused a missing or unknown key already
)


def api_key(
    request: Request, _credentials: HTTPAuthorizationCredentials | None = Security(api_key_scheme)
) -> Principal:
    """Dependency of every ``/api`` router: declares the bearer scheme; the caller's :class:`Principal`."""
    return principal(request)


def require_hub(request: Request) -> Principal:
    """Dependency for hub-operator-only endpoints."""
    who = principal(request)
    if not who.is_hub:
        raise HTTPException(403, "this endpoint is for the hub operator's keys only")
    return who


async def create_key(db_session: AsyncSession, name: str, cpo_party: Party | None) -> str:
    """A new key (returned once, stored hashed)."""
    if not name.strip():
        raise ValueError("name must not be empty")
    if await db_session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ValueError(f"an API key named {name!r} exists already")
    if cpo_party is not None and cpo_party.role != PartyRole.CPO:
        raise ValueError(f"{cpo_party.key} is not a CPO")
    key = "evh_" + new_token(32)
    db_session.add(ApiKey(name=name, key_hash=hash_token(key), cpo_id=cpo_party.id if cpo_party else None))
    await db_session.flush()
    return key


async def revoke_key(db_session: AsyncSession, name: str) -> None:
    row = await db_session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise ValueError(f"no API key named {name!r}")
    row.revoked = True


async def list_keys(db_session: AsyncSession) -> Sequence[ApiKey]:
    return (await db_session.scalars(select(ApiKey).order_by(ApiKey.name))).all()
