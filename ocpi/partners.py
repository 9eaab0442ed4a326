"""Partner administration for the CLI and the ``/api/partners`` HTTP API: list, health, invite, register."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel
from sqlalchemy import select

from kernel.apiauth import api_key, require_hub
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import MAX_ID, Paging, paged, paging
from kernel.db.engine import Database
from kernel.models.roaming import OcpiPartner
from kernel.outbox import outbox_stats
from kernel.timeutil import utcnow
from ocpi.credentials import Invitation, invite, register
from ocpi.platform import OcpiPlatform


@dataclass(frozen=True)
class PartnerRow:
    id: int
    name: str
    status: str
    version: str | None
    versions_url: str | None
    roles: list[str]
    endpoints: list[str]
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None


def _row(p: OcpiPartner) -> PartnerRow:
    return PartnerRow(
        id=p.id,
        name=p.name,
        status=str(p.status),
        version=p.version,
        versions_url=p.versions_url,
        roles=[f"{r.country_code}*{r.party_id} {r.role}" for r in p.roles],
        endpoints=[f"{e.get('identifier')}:{e.get('role')}" for e in p.endpoints or []],
        last_success_at=p.last_success_at,
        last_error_at=p.last_error_at,
        last_error=p.last_error,
    )


async def list_partners(db: Database) -> list[PartnerRow]:
    """``evhub partners list``."""
    async with db.session() as db_session:
        rows = (await db_session.scalars(select(OcpiPartner).order_by(OcpiPartner.id))).all()
        return [_row(p) for p in rows]


async def partner_health(db: Database, partner_id: int) -> dict[str, Any] | None:
    """Registration, last success/error and the partner's outbox backlog; None for an unknown partner.

    ``healthy`` is true when nothing is dead-lettered and the oldest pending push is under 5 minutes old."""
    async with db.session() as db_session:
        p = await db_session.get(OcpiPartner, partner_id)
        if p is None:
            return None
        row = _row(p)
        client_info = dict(p.client_info or {})
    stats = await outbox_stats(db, channel="ocpi", destination=str(partner_id))
    oldest = stats.get("oldest_pending")
    lag = (utcnow() - oldest).total_seconds() if oldest else 0.0
    return {
        **asdict(row),
        "outbox": {
            "pending": stats["pending"],
            "delivered": stats["delivered"],
            "dead": stats["dead"],
            "oldest_pending_seconds": round(lag, 1),
        },
        "client_info": client_info,
        "healthy": row.status == "registered" and stats["dead"] == 0 and lag < 300,
    }


class OutboxBacklog(BaseModel):
    pending: int
    delivered: int
    dead: int
    oldest_pending_seconds: float


class PartnerHealth(BaseModel):
    """A partner's registration, last success/error and its outbox backlog (see :func:`partner_health`)."""

    id: int
    name: str
    status: str
    version: str | None
    versions_url: str | None
    roles: list[str]
    endpoints: list[str]
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    outbox: OutboxBacklog
    client_info: dict[str, Any]
    healthy: bool


def api_router(db: Database) -> APIRouter:
    router = APIRouter(
        prefix="/api/partners",
        tags=["partners"],
        dependencies=[Depends(api_key), Depends(refuse_nul), Depends(require_hub)],
        responses=errors(401, 403, 422),
    )

    @router.get("", summary="OCPI partners with their registration state", responses=paged())
    async def partners(page: Paging = Depends(paging)) -> list[PartnerRow]:
        return page.slice(await list_partners(db))

    @router.get("/{partner_id}/health", summary="One partner's health", responses=errors(404))
    async def health(partner_id: int = Path(ge=1, le=MAX_ID)) -> PartnerHealth:
        result = await partner_health(db, partner_id)
        if result is None:
            raise HTTPException(status_code=404, detail="unknown partner")
        return PartnerHealth.model_validate(result)

    return router


# ---------------------------------------------------------------------------------------------- CLI helpers


def platform_for(db: Database, public_url: str) -> OcpiPlatform:
    """An :class:`OcpiPlatform` outside a running hub (CLI): only the database and the public URL."""
    return OcpiPlatform(db=db, public_url=public_url)


def role_key(given: str) -> tuple[str, str, str]:
    """``NL*EMS`` (an eMSP) or ``NL*EMS:CPO`` -> (country_code, party_id, role); ``ValueError`` otherwise."""
    key, _, role = given.strip().partition(":")
    cc, star, pid = key.partition("*")
    role = (role or "EMSP").upper()
    if (
        not star
        or len(cc) != 2
        or len(pid) != 3
        or role not in ("CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP")
    ):
        raise ValueError(f"role {given!r}: expected COUNTRY*PARTY or COUNTRY*PARTY:ROLE (e.g. NL*EMS:EMSP)")
    return cc.upper(), pid.upper(), role


async def invite_partner(
    db: Database,
    public_url: str,
    name: str,
    *,
    allowed_cpo_ids: list[int] | None = None,
    roles: list[tuple[str, str, str]] | None = None,
) -> Invitation:
    """``evhub partners invite NAME``: returns the partner id, token A (show it once) and our versions URL.
    With ``roles``, those are the only roles the partner may register (:func:`ocpi.credentials.invite`)."""
    return await invite(db, platform_for(db, public_url), name, allowed_cpo_ids=allowed_cpo_ids, roles=roles)


async def register_partner(
    db: Database, public_url: str, versions_url: str, token_a: str, *, name: str | None = None
) -> PartnerRow:
    """``evhub partners register URL TOKEN_A``: the hub registers with the partner (raises
    :class:`~ocpi.credentials.HandshakeError` with the OCPI status and a message when it cannot)."""
    partner = await register(db, platform_for(db, public_url), versions_url, token_a, name=name)
    async with db.session() as db_session:
        p = await db_session.get(OcpiPartner, partner.id)
        assert p is not None
        return _row(p)
