"""Billing inside ``evhub serve``: the CDR hook (per-session invoices and the credit notes of credit CDRs, in the
CDR's transaction), the billing desk for the portal and the receipts (``hub.services.billing``), the ``/api/billing``
routes and the payment provider's webhook, and the jobs: monthly invoices, dunning, and the B2B documents of
closed settlement runs.

The hook is appended after OCPI's push and before the portal's receipt hook (install order,
:data:`evhub.wiring.COMPONENTS`), so a receipt e-mail finds the session's invoice issued.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from billing import api_documents, api_dunning, api_payments, api_reports
from billing.cdr_hook import billing_cdr_hook
from billing.desk import Desk
from billing.dunning_job import run_dunning_job
from billing.monthly_job import run_monthly_job
from billing.payments import webhooks
from billing.payments.channel import make_payment_sender
from billing.payments.collection import CHANNEL as PAYMENT_CHANNEL
from billing.payments.stripe_provider import use_settings
from billing.settlement_documents import run_settlement_documents_job
from kernel.components import Hub
from kernel.models import Cdr
from kernel.outbox import OutboxDispatcher, register_channel

log = logging.getLogger(__name__)


async def cdr_hook(db_session: AsyncSession, cdr: Cdr) -> None:
    """``hub.hooks.cdr``: billing's documents of the CDR, in a savepoint (a failure never loses the CDR; the
    documents are issued again by the monthly job or ``evhub invoices issue``)."""
    try:
        async with db_session.begin_nested():
            await billing_cdr_hook(db_session, cdr)
    except Exception:
        log.exception("could not issue the billing documents of CDR %s", cdr.cdr_uid)


class BillingComponent:
    name = "billing"

    def __init__(
        self,
        *,
        monthly_interval: float = 3600.0,
        dunning_interval: float = 3600.0,
        settlement_interval: float = 3600.0,
    ) -> None:
        self.monthly_interval = monthly_interval
        self.dunning_interval = dunning_interval
        self.settlement_interval = settlement_interval
        self.hub: Hub | None = None
        self.payment_dispatcher: OutboxDispatcher | None = None

    def install(self, hub: Hub) -> None:
        self.hub = hub
        hub.hooks.cdr.append(cdr_hook)
        hub.services.billing = Desk(hub.db, hub.settings)
        use_settings(hub.settings)  # payment collection's provider (off without EVHUB_STRIPE_API_KEY)
        register_channel(PAYMENT_CHANNEL, make_payment_sender(hub.db), shared_destination="provider")
        if hub.app is not None:
            for module in (api_documents, api_payments, api_dunning, api_reports):
                hub.app.include_router(module.router, prefix="/api")
            hub.app.include_router(webhooks.router)  # POST /billing/webhooks/stripe: signed, no API key
        hub.every(self.monthly_interval, self._monthly, "billing-monthly")
        hub.every(self.dunning_interval, self._dunning, "billing-dunning")
        hub.every(self.settlement_interval, self._settlement, "billing-settlement-documents")

    async def _monthly(self) -> None:
        assert self.hub is not None
        await run_monthly_job(self.hub)

    async def _dunning(self) -> None:
        assert self.hub is not None
        await run_dunning_job(self.hub)

    async def _settlement(self) -> None:
        assert self.hub is not None
        await run_settlement_documents_job(self.hub)

    async def start(self, hub: Hub) -> None:
        if hub.services.outbox is None and hub.scheduler is not None:  # no OCPI dispatcher: collect ourselves
            self.payment_dispatcher = OutboxDispatcher(hub.db, channels=[PAYMENT_CHANNEL])
            hub.every(5.0, self.payment_dispatcher.scheduled, "billing-payment-dispatch")

    async def stop(self) -> None:
        if self.payment_dispatcher is not None:
            await self.payment_dispatcher.aclose()
