"""Versions and version details (2.2.1 only), as the hub's CPO roles implement them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi.deps import request_transaction
from ocpi.envelope import NotFound, ok
from ocpi.partner_auth import partner_for_header
from ocpi.platform import VERSION, OcpiPlatform, get_platform

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


def version_details(platform: OcpiPlatform) -> dict:
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
    return ok([{"version": VERSION, "url": platform.version_url}])


@router.get("/{version}")
async def details(
    version: str,
    request: Request,
    db_session: AsyncSession = Depends(request_transaction, scope="function"),
    platform: OcpiPlatform = Depends(get_platform),
):
    await partner_for_header(db_session, request.headers.get("Authorization"), allow_token_a=True)
    if version != VERSION:
        raise NotFound(f"Version {version} is not supported")
    return ok(version_details(platform))
