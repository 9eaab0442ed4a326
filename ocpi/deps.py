"""Request dependencies of the OCPI routes: one committed transaction per request, the authenticated
partner, the routing headers resolved to (caller role, hosted CPO), and JSON bodies read into models.

A partner's module routes are those of the version it negotiated (``ocpi_partners.version``): a 2.1.1 partner
calling a ``/ocpi/cpo/2.2.1/...`` module, or a 2.2.1 partner a ``/ocpi/cpo/2.1.1/...`` one, is answered HTTP
404 with status 2000 naming its version (its token is known, so not 401; versions, details and credentials of
either version stay open to it: a credentials PUT is how the spec switches versions). A 2.1.1 request carries
no routing headers: :func:`caller_211` gives the partner's one role and every hosted CPO it may see."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel import jsonutil
from kernel.models import Party
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole
from ocpi import status
from ocpi.envelope import OcpiError
from ocpi.partner_auth import partner_for_header
from ocpi.platform import VERSION, VERSION_211, OcpiPlatform, get_platform
from ocpi.routing import hosted_cpos, read_routing, resolve

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
    partner = await _registered(request, db_session, VERSION)
    routing = read_routing(request)
    role, cpo = await resolve(db_session, partner, routing)
    return Caller(partner, role, cpo, db_session, platform)


async def _registered(request: Request, db_session: AsyncSession, version: str) -> OcpiPartner:
    """The registered partner whose token C the request presents, refused (404 / 2000) when it negotiated the
    other OCPI version than the route's (``version``); shared by :func:`caller` and :func:`caller_211`."""
    partner = await partner_for_header(db_session, request.headers.get("Authorization"), allow_token_a=False)
    _require_version(partner, version)
    return partner


def _require_version(partner: OcpiPartner, version: str) -> None:
    """404 / 2000 when the partner negotiated the other version than the route's."""
    negotiated = partner.version or VERSION
    if (negotiated == VERSION_211) != (version == VERSION_211):
        raise OcpiError(
            status.CLIENT_ERROR,
            f"This partner negotiated OCPI {negotiated}: use the /ocpi/cpo/{negotiated}/ modules",
            http_status=404,
        )


@dataclass
class Caller211:
    """An authenticated, registered 2.1.1 partner: its one role, and the hosted CPOs it may see (its roaming
    agreements, ``allowed_cpo_ids``; None: every hosted CPO), in id order. 2.1.1 has no routing headers, so a
    request is "to" all of them (lists are their union) and "from" that role."""

    partner: OcpiPartner
    role: OcpiPartnerRole
    cpos: list[Party]
    db_session: AsyncSession
    platform: OcpiPlatform

    @property
    def cpo_ids(self) -> list[int]:
        return [cpo.id for cpo in self.cpos]

    def cpo(self, cpo_id: int) -> Party:
        return next(cpo for cpo in self.cpos if cpo.id == cpo_id)

    def as_caller(self, cpo: Party) -> Caller:
        """The 2.2.1 view of this request addressed to ``cpo`` (what the shared 2.2.1 functions take)."""
        return Caller(self.partner, self.role, cpo, self.db_session, self.platform)


async def caller_211(
    request: Request,
    db_session: AsyncSession = Depends(request_transaction, scope="function"),
    platform: OcpiPlatform = Depends(get_platform),
) -> Caller211:
    partner = await _registered(request, db_session, VERSION_211)
    if not partner.roles:
        raise OcpiError(status.CLIENT_ERROR, "This partner has no registered role", http_status=403)
    allowed = partner.allowed_cpo_ids
    cpos = [cpo for cpo in await hosted_cpos(db_session) if allowed is None or cpo.id in allowed]
    return Caller211(partner, partner.roles[0], cpos, db_session, platform)


async def read_json(request: Request, *, exact: bool = False) -> object:
    """The body as JSON (None when empty); ``exact``: every non-integer number a Decimal, never a float
    (:func:`kernel.jsonutil.loads`: money, such as a posted CDR's). 2001 when it is not JSON."""
    raw = await request.body()
    try:
        if not raw:
            return None
        return jsonutil.loads(raw) if exact else json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise OcpiError(status.INVALID_PARAMETERS, "Request body is not valid JSON") from None
    except RecursionError:
        raise OcpiError(status.INVALID_PARAMETERS, "Request body is nested too deep") from None


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
