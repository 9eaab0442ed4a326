"""The pricing part of ``evhub serve``: rates ended sessions into CDRs, serves quotes and grid load.

It provides ``hub.services.pricing`` and runs ``hub.hooks.cdr`` for each CDR it creates (and the grid-load API
``hub.hooks.tariff`` for each tariff version it publishes), in that CDR's or version's transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from kernel.components import Hub
from kernel.plausibility import Limits
from tariffs.api import router
from tariffs.rating import rate_pending
from tariffs.reservation_job import install_reservation_job

log = logging.getLogger(__name__)


class PricingComponent:
    """Polls the database for sessions waiting to be priced (every ``interval`` seconds)."""

    name = "pricing"

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._hub: Hub | None = None
        self._lock = asyncio.Lock()

    def install(self, hub: Hub) -> None:
        self._hub = hub
        hub.services.pricing = self
        if hub.app is not None:  # None in an OCPP worker process (evhub.workers)
            hub.app.include_router(router, prefix="/api")
        if hub.scheduler is not None:
            hub.every(self.interval, self.run_once, "pricing.rate_pending")
            install_reservation_job(hub)  # expired reservations become sessions to price (T7)

    async def run_once(self) -> int:
        """Rate what is pending now (also callable directly, e.g. by the demo)."""
        assert self._hub is not None
        async with self._lock:
            try:
                return await rate_pending(
                    self._hub.db, self._hub.hooks.cdr, limits=Limits.from_settings(self._hub.settings)
                )
            except Exception:
                log.exception("rating run failed; will retry")
                return 0

    async def start(self, hub: Hub) -> None:
        return None

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            async with self._lock:
                return None
