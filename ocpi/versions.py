"""Versions and version details, as the hub's CPO roles implement them: OCPI 2.2.1 (endpoints with a role) and
OCPI 2.1.1 (endpoints are ``{identifier, url}``; no hubclientinfo, no chargingprofiles)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi.deps import request_transaction
from ocpi.envelope import NotFound, ok
from ocpi.partner_auth import partner_for_header
from ocpi.platform import VERSION, VERSION_211, VERSIONS, OcpiPlatform, get_platform

router = APIRouter()

# (identifier, role) the hub implements as the CPO side.
ENDPOINTS: list[tuple[str, str]] = [
    ("credentials", "SENDER"),
    ("credentials", "RECEIVER"),
    ("locations", "SENDER"),
    ("sessions", "SENDER"),
    ("cdrs", "SENDER"),
    ("tariffs", "SENDER"),
    ("tokens", "RECEIVER"),
    ("commands", "RECEIVER"),
    ("hubclientinfo", "RECEIVER"),
    ("chargingprofiles", "RECEIVER"),
]

ENDPOINTS_211 = ["credentials", "locations", "sessions", "cdrs", "tariffs", "tokens", "commands"]
"""The 2.1.1 modules the hub offers (2.1.1 version details: ModuleID and url only)."""


def version_details(platform: OcpiPlatform, version: str = VERSION) -> dict:
    if version == VERSION_211:
        endpoints = [{"identifier": i, "url": platform.module_url(i, version)} for i in ENDPOINTS_211]
        return {"version": version, "endpoints": endpoints}
    return {
        "version": VERSION,
        "endpoints": [
            {"identifier": ident, "role": role, "url": platform.module_url(ident)}
            for ident, role in ENDPOINTS
        ],
    }


@router.get("/versions")
async def versions(
    request: Request,
    db_session: AsyncSession = Depends(request_transaction, scope="function"),
    platform: OcpiPlatform = Depends(get_platform),
):
    await partner_for_header(db_session, request.headers.get("Authorization"), allow_token_a=True)
    return ok([{"version": v, "url": platform.details_url(v)} for v in VERSIONS])


@router.get("/{version}")
async def details(
    version: str,
    request: Request,
    db_session: AsyncSession = Depends(request_transaction, scope="function"),
    platform: OcpiPlatform = Depends(get_platform),
):
    await partner_for_header(db_session, request.headers.get("Authorization"), allow_token_a=True)
    if version not in VERSIONS:
        raise NotFound(f"Version {version} is not supported")
    return ok(version_details(platform, version))
