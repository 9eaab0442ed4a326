"""The reservation job of the pricing component: every ``interval`` seconds, reservations a session was started
with become ``USED`` and those past their expiry ``EXPIRED``, each with a reservation-only session for the
rating job to price (:func:`tariffs.reservations.expire_reservations`).

"Now" is the hub's clock (:func:`kernel.timeutil.utcnow`) unless a run is given its own instant; the grace after
the expiry is ``late_data_grace``: a start sent just before the expiry and delivered late still uses the
reservation instead of being billed as an expired one."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from kernel.components import Hub
from kernel.db.engine import Database
from kernel.timeutil import utcnow
from tariffs.reservations import expire_reservations

log = logging.getLogger(__name__)


class ReservationJob:
    """Expires reservations on a schedule (and on demand, at a given instant, for tests and tools)."""

    def __init__(self, db: Database, grace_s: float = 0.0) -> None:
        self.db = db
        self.grace = timedelta(seconds=grace_s)

    async def run_once(self, now: datetime | None = None) -> int:
        """Expire what is due at ``now`` (default: the hub's clock); returns how many expired."""
        try:
            return await expire_reservations(self.db, now=now or utcnow(), grace=self.grace)
        except Exception:
            log.exception("reservation job failed; will retry")
            return 0


def install_reservation_job(hub: Hub, interval: float = 30.0) -> ReservationJob:
    """Register the job on the hub's scheduler (when it has one) and return it."""
    job = ReservationJob(hub.db, hub.settings.late_data_grace)
    hub.every(interval, job.run_once, "pricing.reservations")
    return job
