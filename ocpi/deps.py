"""Request dependencies of the OCPI routes: one committed transaction per request, the authenticated
partner, the routing headers resolved to (caller role, hosted CPO), and JSON bodies read into models."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Party
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole
from ocpi import status
from ocpi.envelope import OcpiError
from ocpi.partner_auth import partner_for_header
from ocpi.platform import OcpiPlatform, get_platform
from ocpi.routing import read_routing, resolve

M = TypeVar("M", bound=BaseModel)


async def request_transaction(platform: OcpiPlatform = Depends(get_platform)) -> AsyncIterator[AsyncSession]:
    """The request's transaction: committed when the handler returns, rolled back when it raises."""
    async with platform.db.session() as db_session:
        yield db_session


@dataclass
class Caller:
    """An authenticated, registered partner addressing one hosted CPO."""

    partner: OcpiPartner
    role: OcpiPartnerRole
    cpo: Party
    db_session: AsyncSession
    platform: OcpiPlatform


async def caller(
    request: Request,
    db_session: AsyncSession = Depends(request_transaction, scope="function"),
    platform: OcpiPlatform = Depends(get_platform),
) -> Caller:
    partner = await partner_for_header(db_session, request.headers.get("Authorization"), allow_token_a=False)
    routing = read_routing(request)
    role, cpo = await resolve(db_session, partner, routing)
    return Caller(partner, role, cpo, db_session, platform)


async def read_json(request: Request) -> object:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise OcpiError(status.INVALID_PARAMETERS, "Request body is not valid JSON") from None


async def read_model(request: Request, model: type[M]) -> M:
    """The body validated as ``model``; 2001 (HTTP 400) for invalid JSON or an invalid object."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise OcpiError(status.INVALID_PARAMETERS, "Request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise OcpiError(status.INVALID_PARAMETERS, f"Invalid object: {problems}") from None
