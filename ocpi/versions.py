"""Versions and version details, as the hub's CPO roles implement them: OCPI 2.2.1 (endpoints with a role) and
OCPI 2.1.1 (endpoints are ``{identifier, url}``; no hubclientinfo, no chargingprofiles).

The hub's hosted eMSPs add the tokens Sender for external CPO partners (:mod:`ocpi.modules.tokens_sender`):
in 2.2.1 the endpoint ``tokens`` ``SENDER`` at ``/ocpi/emsp/2.2.1/tokens``, and the CDRs Receiver, ``cdrs``
``RECEIVER`` at ``/ocpi/emsp/2.2.1/cdrs`` (:mod:`ocpi.modules.cdrs_receiver`); in 2.1.1 (one role per party, so
one ``tokens`` entry) a CPO partner's details name ``/ocpi/emsp/2.1.1/tokens`` as ``tokens``, every other
partner's the CPO side's Receiver."""

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

EMSP_ENDPOINTS: list[tuple[str, str]] = [("tokens", "SENDER"), ("cdrs", "RECEIVER")]
"""(identifier, role) the hub implements as the eMSP side of its hosted eMSPs, under ``/ocpi/emsp/``."""
EMSP_ENDPOINTS_211 = ["tokens"]
"""The eMSP side's modules in 2.1.1 (only the tokens Sender: CDRs are received in 2.2.1 only)."""

ENDPOINTS_211 = ["credentials", "locations", "sessions", "cdrs", "tariffs", "tokens", "commands"]
"""The 2.1.1 modules the hub offers (2.1.1 version details: ModuleID and url only)."""


def emsp_module_url(platform: OcpiPlatform, identifier: str, version: str = VERSION) -> str:
    """``https://hub.example/ocpi/emsp/2.2.1/tokens``: a module of the hub's eMSP side."""
    return f"{platform.base_url}/emsp/{version}/{identifier}"


def version_details(platform: OcpiPlatform, version: str = VERSION, *, cpo_partner: bool = False) -> dict:
    """The endpoints of ``version``; ``cpo_partner``: the caller is an external CPO (2.1.1: it gets the
    eMSP side's ``tokens``)."""
    if version == VERSION_211:
        endpoints = [
            {
                "identifier": i,
                "url": emsp_module_url(platform, i, version)
                if cpo_partner and i in EMSP_ENDPOINTS_211
                else platform.module_url(i, version),
            }
            for i in ENDPOINTS_211
        ]
        return {"version": version, "endpoints": endpoints}
    return {
        "version": VERSION,
        "endpoints": [
            {"identifier": ident, "role": role, "url": platform.module_url(ident)}
            for ident, role in ENDPOINTS
        ]
        + [
            {"identifier": ident, "role": role, "url": emsp_module_url(platform, ident)}
            for ident, role in EMSP_ENDPOINTS
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
    partner = await partner_for_header(db_session, request.headers.get("Authorization"), allow_token_a=True)
    if version not in VERSIONS:
        raise NotFound(f"Version {version} is not supported")
    cpo_partner = any(r.role == "CPO" for r in partner.roles)
    return ok(version_details(platform, version, cpo_partner=cpo_partner))
