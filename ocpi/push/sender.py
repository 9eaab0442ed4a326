"""The ``ocpi`` outbox channel sender: it resolves the partner's current Receiver endpoint at delivery time,
sends the message with its routing headers, classifies the answer (retry on timeouts, 5xx, 401/408/425/429 and
3xxx; give up on other 4xx and 2xxx) and records the partner's health (last success, last error).

A tariff PUT that a newer version of the same tariff superseded while it waited is not sent (acknowledged as
skipped): a partner never receives an older version of a tariff after a newer one."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from kernel.db.engine import Database
from kernel.models import OutboxMessage
from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.outbox import DeliveryResult
from kernel.timeutil import utcnow
from ocpi import client
from ocpi.push.tariff_push import superseded
from ocpi.v211 import outgoing

log = logging.getLogger(__name__)

RETRIED_HTTP = (401, 408, 425, 429)


def _join(base: str, path: str) -> str:
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


class OcpiSender:
    """The ``ocpi`` outbox channel: one HTTP request per message to the partner's current endpoint."""

    def __init__(
        self, db: Database, *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.db = db
        self.timeout = timeout
        self.transport = transport  # None: the network (see ocpi.client)

    async def __call__(self, message: OutboxMessage) -> DeliveryResult:
        payload = message.payload or {}
        async with self.db.session() as db_session:
            partner = await db_session.get(OcpiPartner, int(message.destination))
            if partner is None or partner.status != PartnerStatus.REGISTERED or not partner.outgoing_token:
                return DeliveryResult.give_up("partner is not registered")
            token = partner.outgoing_token
            url = payload.get("url")
            if not url:
                base = partner.endpoint(payload.get("module", ""), "RECEIVER")
                if base is None:
                    return DeliveryResult.give_up(f"partner has no {payload.get('module')} receiver endpoint")
                url = _join(base, payload.get("path", ""))
            newer = await superseded(db_session, message)
            if newer is None:  # in the OCPI version the partner reads (2.1.1: translated, ocpi.v211.outgoing)
                payload = await outgoing.for_partner(db_session, partner, payload)
        if newer is not None:  # the partner gets the newer version; this one must never arrive after it
            return DeliveryResult.delivered(skipped=f"superseded by tariff version {newer}")
        outcome = await self._send(message, payload, url, token)
        await self._record(partner.id, outcome)
        return outcome

    async def _send(
        self, message: OutboxMessage, payload: dict[str, Any], url: str, token: str
    ) -> DeliveryResult:
        method = payload.get("method", "PUT")
        try:
            reply = await client.request(
                method,
                url,
                token,
                json=payload.get("body") if method != "DELETE" else None,
                headers=payload.get("headers") or {},
                correlation_id=f"evhub-outbox-{message.id}",
                timeout=self.timeout,
                transport=self.transport,
                version=payload.get("version") or "2.2.1",
            )
        except httpx.TimeoutException:
            return DeliveryResult.retry(f"{method} {url}: timeout")
        except httpx.HTTPError as exc:
            return DeliveryResult.retry(f"{method} {url}: {type(exc).__name__} {exc}")
        info: dict[str, Any] = {"http_status": reply.http_status, "status_code": reply.status_code}
        location = reply.headers.get("location")
        if location:
            info["location"] = location
        where = (
            f"{method} {url}: HTTP {reply.http_status} OCPI {reply.status_code} {reply.status_message or ''}"
        )
        if reply.http_status >= 500 or reply.http_status in RETRIED_HTTP:
            retry_after = reply.headers.get("retry-after")
            delay = float(retry_after) if retry_after and retry_after.isdigit() else None
            return DeliveryResult.retry(where.strip(), delay)
        if reply.http_status >= 400:
            return DeliveryResult(ok=False, permanent=True, error=where.strip(), result=info)
        if reply.status_code is None:
            return DeliveryResult.retry(where.strip())
        if 1000 <= reply.status_code < 2000:
            return DeliveryResult(ok=True, result=info)
        if 2000 <= reply.status_code < 3000:
            return DeliveryResult(ok=False, permanent=True, error=where.strip(), result=info)
        return DeliveryResult.retry(where.strip())

    async def _record(self, partner_id: int, outcome: DeliveryResult) -> None:
        try:
            async with self.db.session() as db_session:
                partner = await db_session.get(OcpiPartner, partner_id)
                if partner is None:
                    return
                if outcome.ok:
                    partner.last_success_at = utcnow()
                else:
                    partner.last_error_at = utcnow()
                    partner.last_error = (outcome.error or "")[:2000]
        except Exception:  # health bookkeeping must never fail a delivery
            log.debug("could not record partner health", exc_info=True)
