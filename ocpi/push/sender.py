"""The ``ocpi`` outbox channel sender: it resolves the partner's current Receiver endpoint at delivery time,
sends the message with its routing headers, classifies the answer (:mod:`ocpi.push.classify`: delivered,
retried, or parked as refused) and records the partner's health (last success, last error). The first success
after failures re-syncs the partner (:func:`ocpi.push.resync.resync_partner`, automatic: what was parked is sent
again as its current state).

A tariff PUT that a newer version of the same tariff superseded while it waited is not sent (acknowledged as
skipped): a partner never receives an older version of a tariff after a newer one."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import OutboxMessage
from kernel.models.roaming import OcpiPartner, PartnerStatus
from kernel.outbox import DeliveryResult, name_destinations
from kernel.timeutil import utcnow
from ocpi import client
from ocpi.push.classify import classify
from ocpi.push.outbox_message import CHANNEL
from ocpi.push.resync import resync_partner
from ocpi.push.tariff_push import superseded
from ocpi.v211 import outgoing

log = logging.getLogger(__name__)


async def partner_names(db_session: AsyncSession, destinations: list[str]) -> dict[str, str]:
    """The names of the partners that ``ocpi`` outbox destinations (partner ids) stand for, and of every
    registered partner (so each has its backlog gauge, 0 when nothing waits)."""
    ids = [int(d) for d in destinations if d.isdigit()]
    rows = await db_session.execute(
        select(OcpiPartner.id, OcpiPartner.name).where(
            OcpiPartner.id.in_(ids) | (OcpiPartner.status == PartnerStatus.REGISTERED)
        )
    )
    return {str(pid): name for pid, name in rows.all()}


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
        self.pool = client.ClientPool(transport=transport)  # one HTTP client (connection pool) per partner
        self._resyncing: set[int] = set()  # partners whose re-sync runs
        self._tasks: set[asyncio.Task[None]] = set()
        name_destinations(CHANNEL, partner_names)  # the evhub_outbox_backlog gauge, labelled by partner name

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
                # the same correlation id on every attempt of this row; the request id names the attempt
                correlation_id=f"evhub-outbox-{message.id}",
                request_id=f"evhub-outbox-{message.id}-{message.attempts}",
                timeout=self.timeout,
                http=self.pool.client(message.destination),
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
        return classify(reply.http_status, reply.status_code, reply.headers, where.strip(), info)

    async def _record(self, partner_id: int, outcome: DeliveryResult) -> None:
        """Last success / last error of the partner; the first success after errors re-syncs it."""
        recovered = False
        try:
            async with self.db.session() as db_session:
                partner = await db_session.get(OcpiPartner, partner_id)
                if partner is None:
                    return
                if outcome.ok:
                    failing = partner.last_error_at is not None and (
                        partner.last_success_at is None or partner.last_error_at > partner.last_success_at
                    )
                    partner.last_success_at = utcnow()
                    recovered = failing
                elif not outcome.isolated:  # one object's conflict is that row's error, not the partner's
                    partner.last_error_at = utcnow()
                    partner.last_error = (outcome.error or "")[:2000]
        except Exception:  # health bookkeeping must never fail a delivery
            log.debug("could not record partner health", exc_info=True)
            return
        if recovered and partner_id not in self._resyncing:
            # after this delivery, not inside it (its lease and timeout are the message's)
            self._resyncing.add(partner_id)
            task = asyncio.create_task(self._resync(partner_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Let the re-syncs running in the background finish (each object is its own transaction), then close
        the partners' HTTP clients."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.aclose()

    async def _resync(self, partner_id: int) -> None:
        try:
            await resync_partner(self.db, partner_id, automatic=True)
        except Exception:  # the scanner's re-sync of recovered partners retries it
            log.exception("could not re-sync partner %s after it recovered", partner_id)
        finally:
            self._resyncing.discard(partner_id)
