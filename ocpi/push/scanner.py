"""The push scanner, the periodic safety net of the pushes: it queues what changed without an explicit push
(CDRs and the latest version of each tariff not yet queued, sessions whose ``last_updated`` moved, EVSE statuses that changed,
locations not yet sent, or no longer visible). Idempotent: what was queued is not queued again. It also re-syncs
the partners that deliver again after something of theirs was parked (:func:`ocpi.push.resync.resync_recovered`),
in case the sender's own trigger (the first success after failures) was lost."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Location, TariffVersion
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


async def scan(db: Database, *, window: timedelta = timedelta(days=7)) -> int:
    """Queue what changed in the last ``window`` without an explicit push; returns the number queued."""
    since = utcnow() - window
    count = await resync_recovered(db)
    async with db.session() as db_session:
        partners = await registered_partners(db_session)
        if not partners:
            return 0
        for cdr_id in (
            await db_session.scalars(select(Cdr.id).where(Cdr.created_at >= since, Cdr.emsp_id.is_not(None)))
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
                .where(ChargingSession.last_updated >= since, ChargingSession.token_id.is_not(None))
                .order_by(ChargingSession.id)
            )
        ).all()
        for session_id in session_ids:
            count += await enqueue_session_update(session_id, db_session)
        for loc_id in (await db_session.scalars(select(Location.id).order_by(Location.id))).all():
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
