"""One push as a row of the ``ocpi`` outbox channel: the method, the path under the partner's Receiver
endpoint of ``module``, the body and the routing headers; the ordering key (per partner, module and object)
makes the messages of one object arrive in order, the optional dedupe key makes a push happen once."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Party
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole
from kernel.outbox import enqueue
from ocpi.routing import routing_headers

CHANNEL = "ocpi"


async def queue_push(
    db_session: AsyncSession,
    partner: OcpiPartner,
    role: OcpiPartnerRole,
    cpo: Party,
    *,
    module: str,
    method: str,
    path: str,
    body: Any,
    key: str,
    dedupe_key: str | None = None,
) -> bool:
    """Add the message to ``db_session``; False when ``dedupe_key`` was used already (nothing added)."""
    payload = {
        "method": method,
        "module": module,
        "path": path,
        "body": body,
        "headers": routing_headers(cpo.country_code, cpo.party_id, role.country_code, role.party_id),
    }
    ordering_key = f"ocpi:{partner.id}:{module}:{key}"
    msg = await enqueue(db_session, CHANNEL, str(partner.id), ordering_key, payload, dedupe_key)
    return msg is not None
