"""Who calls the hub's eMSP side (``/ocpi/emsp/...``): an external CPO partner, addressing one of the hub's
hosted eMSPs. Shared by the eMSP-side modules (:mod:`ocpi.modules.tokens_sender`,
:mod:`ocpi.modules.cdrs_receiver`).

Only a registered partner with a ``CPO`` role may call (:func:`ocpi.emsp_tokens.cpo_roles`); any other partner
(an eMSP) is answered HTTP 403, a partner of the other OCPI version HTTP 404 / 2000 naming its version. In 2.2.1
``OCPI-from-*`` must be one of its CPO roles (else 2001) and ``OCPI-to-*`` a hosted eMSP (else 4001, HTTP 404).
2.1.1 has no routing headers: the partner's (first) CPO role and every hosted eMSP."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Party
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole
from ocpi import status
from ocpi.deps import request_transaction
from ocpi.emsp_tokens import cpo_roles, hosted_emsps
from ocpi.envelope import OcpiError
from ocpi.partner_auth import partner_for_header
from ocpi.platform import VERSION, VERSION_211, OcpiPlatform, get_platform
from ocpi.routing import read_routing


@dataclass
class CpoCaller:
    """An external CPO partner calling a hosted eMSP's interface."""

    partner: OcpiPartner
    role: OcpiPartnerRole
    emsps: list[Party]
    db_session: AsyncSession
    platform: OcpiPlatform

    @property
    def emsp_ids(self) -> list[int]:
        return [e.id for e in self.emsps]


async def _external_cpo(request: Request, db_session: AsyncSession, version: str) -> OcpiPartner:
    partner = await partner_for_header(db_session, request.headers.get("Authorization"), allow_token_a=False)
    negotiated = partner.version or VERSION
    if (negotiated == VERSION_211) != (version == VERSION_211):
        raise OcpiError(
            status.CLIENT_ERROR,
            f"This partner negotiated OCPI {negotiated}: use the /ocpi/emsp/{negotiated}/ modules",
            http_status=404,
        )
    if not cpo_roles(partner):
        raise OcpiError(
            status.CLIENT_ERROR, "Only a CPO partner may use the hub's eMSP interfaces", http_status=403
        )
    return partner


async def cpo_caller(
    request: Request,
    db_session: AsyncSession = Depends(request_transaction, scope="function"),
    platform: OcpiPlatform = Depends(get_platform),
) -> CpoCaller:
    """2.2.1: the calling CPO role (``OCPI-from-*``) and the hosted eMSP addressed (``OCPI-to-*``)."""
    partner = await _external_cpo(request, db_session, VERSION)
    routing = read_routing(request)
    role = next(
        (
            r
            for r in cpo_roles(partner)
            if (r.country_code, r.party_id) == (routing.from_country_code, routing.from_party_id)
        ),
        None,
    )
    if role is None:
        raise OcpiError(
            status.INVALID_PARAMETERS,
            f"OCPI-from {routing.from_country_code}*{routing.from_party_id} is not a CPO role of this client",
        )
    emsp = next(
        (
            e
            for e in await hosted_emsps(db_session)
            if (e.country_code, e.party_id) == (routing.to_country_code, routing.to_party_id)
        ),
        None,
    )
    if emsp is None:
        raise OcpiError(
            status.UNKNOWN_RECEIVER,
            f"OCPI-to {routing.to_country_code}*{routing.to_party_id} is not an eMSP on this platform",
            http_status=404,
        )
    return CpoCaller(partner, role, [emsp], db_session, platform)


async def cpo_caller_211(
    request: Request,
    db_session: AsyncSession = Depends(request_transaction, scope="function"),
    platform: OcpiPlatform = Depends(get_platform),
) -> CpoCaller:
    """2.1.1: the partner's CPO role, and every hosted eMSP (no routing headers)."""
    partner = await _external_cpo(request, db_session, VERSION_211)
    return CpoCaller(partner, cpo_roles(partner)[0], await hosted_emsps(db_session), db_session, platform)
