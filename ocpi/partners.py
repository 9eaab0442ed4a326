"""Partner administration for the CLI and the ``/api/partners`` HTTP API: list, health, the outbox backlog per
partner, re-sync, invite, register.

A partner is **healthy** only when it is registered, nothing of its outbox is parked, its oldest pending push
waits less than :data:`MAX_PENDING_SECONDS`, and its deliveries have not been failing continuously for more than
:data:`MAX_FAILING_SECONDS` (the last attempt failed, and no success since a message started failing); the
health answer lists each reason it is not (``reasons``)."""

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
from kernel.outbox import Backlog, backlog, outbox_stats
from kernel.timeutil import utcnow
from ocpi.credentials import Invitation, invite, register
from ocpi.platform import OcpiPlatform
from ocpi.push.outbox_message import CHANNEL
from ocpi.push.resync import ResyncReport, resync_partner

MAX_PENDING_SECONDS = 300.0
"""A push waiting longer than this makes its partner unhealthy."""
MAX_FAILING_SECONDS = 60.0
"""Deliveries failing continuously for longer than this make the partner unhealthy."""


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


def _failing_seconds(p: OcpiPartner, waiting: Backlog | None) -> float:
    """How long the partner's deliveries have been failing without a success (0 when the last one succeeded)."""
    if p.last_error_at is None or (p.last_success_at is not None and p.last_success_at >= p.last_error_at):
        return 0.0
    starts = [t for t in (p.last_success_at, waiting.failing_since if waiting else None) if t is not None]
    since = max(starts) if starts else p.last_error_at
    return max(0.0, (utcnow() - since).total_seconds())


async def partner_health(db: Database, partner_id: int) -> dict[str, Any] | None:
    """Registration, last success/error, the partner's outbox backlog and whether it is healthy (with the
    ``reasons`` it is not); None for an unknown partner."""
    async with db.session() as db_session:
        p = await db_session.get(OcpiPartner, partner_id)
        if p is None:
            return None
        row = _row(p)
        client_info = dict(p.client_info or {})
    stats = await outbox_stats(db, channel=CHANNEL, destination=str(partner_id))
    waiting = next(iter(await backlog(db, channel=CHANNEL, destination=str(partner_id))), None)
    oldest = stats.get("oldest_pending")
    lag = (utcnow() - oldest).total_seconds() if oldest else 0.0
    failing = _failing_seconds(p, waiting)
    reasons = []
    if row.status != "registered":
        reasons.append(f"partner is {row.status}, not registered")
    if stats["parked"]:
        reasons.append(
            f"{stats['parked']} message(s) parked, the newest: {waiting.parked_reason if waiting else ''}"
        )
    if lag >= MAX_PENDING_SECONDS:
        reasons.append(
            f"the oldest pending message waits for {lag:.0f} s (limit {MAX_PENDING_SECONDS:.0f} s)"
        )
    if failing > MAX_FAILING_SECONDS:
        reasons.append(f"deliveries failing for {failing:.0f} s: {row.last_error or ''}".strip())
    return {
        **asdict(row),
        "outbox": {
            "pending": stats["pending"],
            "parked": stats["parked"],
            "delivered": stats["delivered"],
            "superseded": stats["superseded"],
            "oldest_pending_seconds": round(lag, 1),
            "failing_seconds": round(failing, 1),
        },
        "client_info": client_info,
        "healthy": not reasons,
        "reasons": reasons,
    }


@dataclass(frozen=True)
class PartnerBacklog:
    """One line of ``evhub outbox list``'s per-partner table."""

    id: int
    name: str
    status: str
    pending: int
    parked: int
    oldest_pending_seconds: float
    last_error: str | None
    parked_reason: str | None


async def partner_backlogs(db: Database, partner_id: int | None = None) -> list[PartnerBacklog]:
    """Every partner (or one) with what its ``ocpi`` outbox still holds, by partner id."""
    async with db.session() as db_session:
        query = select(OcpiPartner).order_by(OcpiPartner.id)
        if partner_id is not None:
            query = query.where(OcpiPartner.id == partner_id)
        partners = (await db_session.scalars(query)).all()
    waiting = {b.destination: b for b in await backlog(db, channel=CHANNEL)}
    now = utcnow()
    rows = []
    for p in partners:
        b = waiting.get(str(p.id))
        rows.append(
            PartnerBacklog(
                id=p.id,
                name=p.name,
                status=str(p.status),
                pending=b.pending if b else 0,
                parked=b.parked if b else 0,
                oldest_pending_seconds=round((now - b.oldest_pending).total_seconds(), 1)
                if b and b.oldest_pending
                else 0.0,
                last_error=b.last_error if b else None,
                parked_reason=b.parked_reason if b else None,
            )
        )
    return rows


async def resync(db: Database, partner_id: int, *, message_id: int | None = None) -> ResyncReport:
    """``evhub partners resync`` / ``evhub outbox retry``: re-send what is parked for the partner as the current
    state of its objects (:mod:`ocpi.push.resync`)."""
    return await resync_partner(db, partner_id, message_id=message_id)


class OutboxBacklog(BaseModel):
    pending: int
    parked: int
    delivered: int
    superseded: int
    oldest_pending_seconds: float
    failing_seconds: float


class PartnerHealth(BaseModel):
    """A partner's registration, last success/error, its outbox backlog and whether it is healthy, with the
    reasons it is not (see :func:`partner_health`)."""

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
    reasons: list[str]


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
    """``evhub partners invite NAME --role ...``: returns the partner id, token A (show it once) and our versions
    URL. ``roles`` are the only roles the partner may register (:func:`ocpi.credentials.invite`)."""
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
