"""The portal as a hub component: the ``/portal`` pages and static files, the ``"email"`` outbox channel, and
the receipt scanner job, and the CDR hook (appended to ``hub.hooks.cdr``, after OCPI's push) that queues each
CDR's receipt in the CDR's own transaction.

Settings used: ``EVHUB_SMTP_URL`` / ``EVHUB_MAIL_FROM`` (receipts), ``EVHUB_PORTAL_TIME_ZONE`` (calendar days
and months of the dashboard, filters and reports; default UTC), ``EVHUB_PORTAL_SECRET`` (cookie signing key;
default: a random key kept in the database).

When no other component runs an outbox dispatcher (``hub.services.outbox`` is None), the portal runs one limited to
the ``"email"`` channel, so receipts go out in any assembly; two dispatchers never deliver a row twice (claims
are leases guarded by a compare-and-set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.components import Hub
from kernel.models import Cdr
from kernel.outbox import BackoffPolicy, OutboxDispatcher, register_channel
from kernel.seams import Services
from kernel.timeutil import zone
from portal.login import Signer
from portal.page_kit import PREFIX, PortalState
from portal.receipts import CHANNEL, enqueue_receipt, make_email_sender, scan_missing_receipts
from portal.router import build_router
from portal.smtp import SmtpConfig

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class ReceiptHook:
    """The CDR hook (run by pricing inside the CDR's transaction): queue the receipt; with the hub's billing desk
    (``services.billing``, read on each CDR), a CDR with a per-session invoice gets the invoice as its receipt. A
    failure here must not lose the CDR, so it runs in a savepoint and is left to the scanner."""

    services: Services | None = field(default=None, compare=False)  # equal hooks: both the receipt hook

    async def __call__(self, db_session: AsyncSession, cdr: Cdr) -> None:
        try:
            async with db_session.begin_nested():
                await enqueue_receipt(db_session, cdr, self.services.billing if self.services else None)
        except Exception:
            log.exception(
                "could not queue the receipt of CDR %s; the receipt scanner will retry", cdr.cdr_uid
            )


receipt_hook = ReceiptHook()
"""The receipt hook of a process without billing (the receipt is never an invoice)."""


class PortalComponent:
    name = "portal"

    def __init__(
        self,
        *,
        time_zone: str | None = None,
        scan_interval: float = 60.0,
        dispatch_interval: float = 5.0,
        receipt_max_age: timedelta = timedelta(days=7),
        dispatch_backoff: BackoffPolicy | None = None,
    ) -> None:
        # None: EVHUB_PORTAL_TIME_ZONE, from the hub's settings (validated there), taken in install()
        self.time_zone = time_zone
        if time_zone is not None:
            zone(time_zone)  # fail early on a wrong zone
        self.scan_interval = scan_interval
        self.dispatch_interval = dispatch_interval
        self.receipt_max_age = receipt_max_age
        self.dispatch_backoff = dispatch_backoff
        self.hub: Hub | None = None
        self.dispatcher: OutboxDispatcher | None = None
        self.state: PortalState | None = None

    def install(self, hub: Hub) -> None:

        self.hub = hub
        self.time_zone = self.time_zone or hub.settings.portal_time_zone
        secret = hub.settings.portal_secret
        self.state = PortalState(
            db=hub.db,
            time_zone=self.time_zone,
            signer=Signer(secret.encode()) if secret else None,
            services=hub.services,
        )
        if hub.app is not None:
            hub.app.include_router(build_router(self.state), prefix=PREFIX, include_in_schema=False)
            hub.app.mount(f"{PREFIX}/static", StaticFiles(directory=str(STATIC_DIR)), name="portal-static")
        smtp = SmtpConfig.from_url(hub.settings.smtp_url)
        register_channel(
            CHANNEL,
            make_email_sender(hub.db, lambda: smtp, hub.settings.mail_from, lambda: hub.services.billing),
            shared_destination=f"{smtp.host}:{smtp.port}" if smtp else "smtp",  # one lane: the mail server
        )
        hub.hooks.cdr.append(ReceiptHook(hub.services))
        if hub.scheduler is not None:
            hub.every(self.scan_interval, self.scan, "portal-receipt-scan")

    async def start(self, hub: Hub) -> None:
        if SmtpConfig.from_url(hub.settings.smtp_url) is None:
            log.warning("EVHUB_SMTP_URL is not set: receipts are queued and wait in the outbox")
        if hub.services.outbox is None and hub.scheduler is not None:
            self.dispatcher = OutboxDispatcher(hub.db, channels=[CHANNEL], backoff=self.dispatch_backoff)
            hub.every(self.dispatch_interval, self.dispatcher.scheduled, "portal-email-dispatch")

    async def scan(self) -> int:
        """The scheduled safety net: enqueue receipts for recent CDRs without one."""
        if self.hub is None:
            return 0
        try:
            return await scan_missing_receipts(
                self.hub.db, max_age=self.receipt_max_age, billing=self.hub.services.billing
            )
        except Exception:
            log.exception("receipt scan failed")
            return 0

    async def stop(self) -> None:
        if self.hub is not None and self.hub.scheduler is not None:
            for job_id in ("portal-receipt-scan", "portal-email-dispatch"):
                job = self.hub.scheduler.get_job(job_id)
                if job is not None:
                    job.remove()
        if self.dispatcher is not None:
            await self.dispatcher.aclose()
