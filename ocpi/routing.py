"""The OCPI 2.2.1 routing headers (``OCPI-from-*`` / ``OCPI-to-*``) and request ids.

The hub is one platform carrying a CPO role per hosted CPO: ``OCPI-to-country-code`` + ``OCPI-to-party-id``
select the CPO a request is for; ``OCPI-from-*`` must be one of the caller's registered roles.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Party, PartyRole
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole
from ocpi import status
from ocpi.envelope import OcpiError

FROM_CC = "OCPI-from-country-code"
FROM_PID = "OCPI-from-party-id"
TO_CC = "OCPI-to-country-code"
TO_PID = "OCPI-to-party-id"
REQUEST_ID = "X-Request-ID"
CORRELATION_ID = "X-Correlation-ID"


def new_request_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Routing:
    from_country_code: str
    from_party_id: str
    to_country_code: str
    to_party_id: str


def read_routing(request: Request) -> Routing:
    """The four routing headers, upper-cased; 2001 when one is missing or malformed."""
    values = {}
    for name in (FROM_CC, FROM_PID, TO_CC, TO_PID):
        raw = (request.headers.get(name) or "").strip()
        if not raw:
            raise OcpiError(status.INVALID_PARAMETERS, f"Missing routing header {name}")
        values[name] = raw.upper()
    if len(values[FROM_CC]) != 2 or len(values[TO_CC]) != 2:
        raise OcpiError(status.INVALID_PARAMETERS, "Routing country codes must have 2 characters")
    if len(values[FROM_PID]) != 3 or len(values[TO_PID]) != 3:
        raise OcpiError(status.INVALID_PARAMETERS, "Routing party ids must have 3 characters")
    return Routing(values[FROM_CC], values[FROM_PID], values[TO_CC], values[TO_PID])


def routing_headers(from_cc: str, from_pid: str, to_cc: str, to_pid: str) -> dict[str, str]:
    return {FROM_CC: from_cc, FROM_PID: from_pid, TO_CC: to_cc, TO_PID: to_pid}


async def hosted_cpos(db_session: AsyncSession) -> list[Party]:
    """The CPO parties the hub hosts: role CPO and not a partner's role."""
    partner_parties = select(OcpiPartnerRole.party_pk)
    rows = await db_session.scalars(
        select(Party).where(Party.role == PartyRole.CPO, Party.id.not_in(partner_parties)).order_by(Party.id)
    )
    return list(rows.all())


async def resolve(
    db_session: AsyncSession, partner: OcpiPartner, routing: Routing
) -> tuple[OcpiPartnerRole, Party]:
    """(the caller's role, the hosted CPO addressed). 2001 for a foreign from-role, 4001 for an unknown CPO."""
    sender = next(
        (
            r
            for r in partner.roles
            if r.country_code == routing.from_country_code and r.party_id == routing.from_party_id
        ),
        None,
    )
    if sender is None:
        raise OcpiError(
            status.INVALID_PARAMETERS,
            f"OCPI-from {routing.from_country_code}*{routing.from_party_id} is not a role of this client",
        )
    cpo = await db_session.scalar(
        select(Party).where(
            Party.country_code == routing.to_country_code,
            Party.party_id == routing.to_party_id,
            Party.role == PartyRole.CPO,
        )
    )
    if cpo is None or cpo.id not in {p.id for p in await hosted_cpos(db_session)}:
        raise OcpiError(
            status.UNKNOWN_RECEIVER,
            f"OCPI-to {routing.to_country_code}*{routing.to_party_id} is not a CPO on this platform",
            http_status=404,
        )
    if partner.allowed_cpo_ids is not None and cpo.id not in partner.allowed_cpo_ids:
        raise OcpiError(status.UNKNOWN_RECEIVER, "No roaming agreement with this CPO", http_status=404)
    return sender, cpo
