"""The push scanner, the periodic safety net of the pushes: it queues what changed without an explicit push
(CDRs and the latest version of each tariff not yet queued, sessions whose ``last_updated`` moved, EVSE statuses that changed,
locations not yet sent, or no longer visible). Idempotent: what was queued is not queued again. It also re-syncs
the partners that deliver again after something of theirs was parked (:func:`ocpi.push.resync.resync_recovered`),
in case the sender's own trigger (the first success after failures) was lost. Only the hub's own CDRs and
sessions: a CDR an external CPO posted to the hub as its eMSP (``cdrs.received``), and its session (no charger),
are that CPO's and never pushed (:func:`ocpi.push.cdr_push.enqueue_cdr`).

Incremental (issue 15: an idle hub with 1,896 recent sessions sat at 60-93 % CPU re-reading all of them every
15 s): :class:`PushScanner`, which the OCPI component runs, keeps a watermark, the start of its last scan, and
looks only at rows changed since then (minus :data:`OVERLAP`, for transactions that committed late): CDRs
created, tariff versions, sessions and locations (or their EVSEs and connectors) updated since. An idle hub's
scan is a few indexed queries that find nothing. A full sweep over the whole window (7 days) runs at the first
scan of the process, whenever the set of registered partners changes, and every :data:`FULL_SWEEP_EVERY`
(what no timestamp shows, such as a partner's CPO limits edited, is caught there). :func:`scan` is one scan,
full or since a given instant."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select, union

from kernel.db.engine import Database
from kernel.models import EVSE, Cdr, ChargingSession, Connector, Location, TariffVersion
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, PartnerStatus
from kernel.timeutil import format_rfc3339, utcnow
from ocpi.push.cdr_push import enqueue_cdr
from ocpi.push.location_push import enqueue_evse_patch, enqueue_location
from ocpi.push.push_state import HIDDEN, find_state
from ocpi.push.recipients import may_see_cpo, party_pks, registered_partners
from ocpi.push.resync import resync_recovered
from ocpi.push.session_push import enqueue_session_update
from ocpi.push.tariff_push import enqueue_tariff
from ocpi.render_objects import load_location, location_last_updated
from ocpi.visibility import location_view

log = logging.getLogger(__name__)

WINDOW = timedelta(days=7)
"""How far back a full sweep looks."""
OVERLAP = timedelta(minutes=10)
"""An incremental scan looks this far behind its watermark: a row stamped before the last scan started but
committed after it (a pricing run's CDRs carry the run's start) is still seen."""
FULL_SWEEP_EVERY = timedelta(hours=1)


class PushScanner:
    """The scanner with its watermark (per process: a restart begins with a full sweep)."""

    def __init__(
        self,
        db: Database,
        *,
        window: timedelta = WINDOW,
        overlap: timedelta = OVERLAP,
        full_every: timedelta = FULL_SWEEP_EVERY,
    ) -> None:
        self.db = db
        self.window = window
        self.overlap = overlap
        self.full_every = full_every
        self.mark: datetime | None = None  # the start of the last scan that finished
        self.last_full: datetime | None = None
        self._partners: str | None = None

    async def scan(self) -> int:
        """One scan: incremental since the watermark, or a full sweep when one is due; returns how many
        pushes it queued."""
        started = utcnow()
        partners = await self._partner_signature()
        since = None
        if (
            self.mark is not None
            and self.last_full is not None
            and started - self.last_full < self.full_every
            and partners == self._partners
        ):
            since = self.mark - self.overlap
        full = since is None
        count = await scan(self.db, window=self.window, since=since)
        self.mark, self._partners = started, partners
        if full:
            self.last_full = started
        return count

    async def _partner_signature(self) -> str:
        """What of the registered partners decides what they receive (who they are, their version, endpoints,
        CPO limits and roles): a partner registered, removed or changed in these sweeps. Not ``updated_at``:
        every delivery stamps the partner's last success."""
        async with self.db.session() as db_session:
            partners = await db_session.execute(
                select(
                    OcpiPartner.id, OcpiPartner.version, OcpiPartner.endpoints, OcpiPartner.allowed_cpo_ids
                )
                .where(OcpiPartner.status == PartnerStatus.REGISTERED)
                .order_by(OcpiPartner.id)
            )
            roles = await db_session.execute(
                select(OcpiPartnerRole.partner_id, OcpiPartnerRole.party_pk, OcpiPartnerRole.role)
                .join(OcpiPartner, OcpiPartner.id == OcpiPartnerRole.partner_id)
                .where(OcpiPartner.status == PartnerStatus.REGISTERED)
                .order_by(OcpiPartnerRole.id)
            )
            return repr(([tuple(row) for row in partners.all()], [tuple(row) for row in roles.all()]))


async def scan(db: Database, *, window: timedelta = WINDOW, since: datetime | None = None) -> int:
    """Queue what changed without an explicit push, in the last ``window`` (a full sweep: every location
    too) or, with ``since``, since that instant (locations only when they or an EVSE or connector of theirs
    changed since); returns the number queued."""
    incremental = since is not None
    since = since if since is not None else utcnow() - window
    count = await resync_recovered(db)
    async with db.session() as db_session:
        partners = await registered_partners(db_session)
        if not partners:
            return 0
        for cdr_id in (
            await db_session.scalars(
                select(Cdr.id).where(
                    Cdr.created_at >= since, Cdr.emsp_id.is_not(None), Cdr.received.is_(False)
                )
            )
        ).all():
            count += await enqueue_cdr(cdr_id, db_session)
        # the latest version of each tariff id only: an older one must never reach a partner after a newer one
        recent_ids = (
            select(TariffVersion.cpo_id, TariffVersion.tariff_id)
            .where(TariffVersion.created_at >= since)
            .distinct()
            .subquery()
        )
        latest = (
            select(TariffVersion.cpo_id, TariffVersion.tariff_id, func.max(TariffVersion.version).label("v"))
            .join(
                recent_ids,
                (recent_ids.c.cpo_id == TariffVersion.cpo_id)
                & (recent_ids.c.tariff_id == TariffVersion.tariff_id),
            )
            .group_by(TariffVersion.cpo_id, TariffVersion.tariff_id)
            .subquery()
        )
        for tv_id in (
            await db_session.scalars(
                select(TariffVersion.id)
                .join(
                    latest,
                    (latest.c.cpo_id == TariffVersion.cpo_id)
                    & (latest.c.tariff_id == TariffVersion.tariff_id)
                    & (latest.c.v == TariffVersion.version),
                )
                .order_by(TariffVersion.id)
            )
        ).all():
            count += await enqueue_tariff(tv_id, db_session)
        session_ids = (
            await db_session.scalars(
                select(ChargingSession.id)
                .where(
                    ChargingSession.last_updated >= since,
                    ChargingSession.token_id.is_not(None),
                    ChargingSession.charge_point_id.is_not(None),  # not an external CPO's (a received CDR's)
                )
                .order_by(ChargingSession.id)
            )
        ).all()
        for session_id in session_ids:
            count += await enqueue_session_update(session_id, db_session)
        location_ids = select(Location.id)
        if incremental:
            location_ids = select(
                union(
                    select(Location.id).where(Location.last_updated >= since),
                    select(EVSE.location_id).where(EVSE.last_updated >= since),
                    select(EVSE.location_id)
                    .join(Connector, Connector.evse_pk == EVSE.id)
                    .where(Connector.last_updated >= since),
                ).subquery()
            )
        for loc_id in sorted((await db_session.scalars(location_ids)).all()):
            loc = await load_location(db_session, loc_id)
            if loc is None:
                continue
            stamp = format_rfc3339(location_last_updated(loc))
            for partner in partners:
                if not may_see_cpo(partner, loc.cpo_id) or not partner.endpoint("locations"):
                    continue
                visible, _entries = await location_view(db_session, loc, party_pks(partner))
                state = await find_state(db_session, partner.id, "location", str(loc.id))
                if not visible:
                    if state is not None and state.last_status != HIDDEN:
                        count += await enqueue_location(loc.id, db_session, partner_id=partner.id)
                    continue
                if state is None or state.last_status != stamp:
                    count += await enqueue_location(loc.id, db_session, partner_id=partner.id)
                    continue
                for evse in loc.evses:
                    evse_state = await find_state(db_session, partner.id, "evse", str(evse.id))
                    if evse_state is None or evse_state.last_status != evse.status:
                        count += await enqueue_evse_patch(db_session, partner, loc, evse)
    return count
