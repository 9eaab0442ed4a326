"""Pushes of Locations: the whole Location (PUT) to every partner that may see it (``publish``, or for
``publish: false`` an eMSP owning a token of ``publish_allowed_to``, see :mod:`ocpi.visibility`), and an EVSE's
status (PATCH, bumping the location's ``last_updated``). A partner that had a location but may no longer see it
gets it once more with ``publish: false``, then nothing until it may see it again."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import EVSE, Location, Party
from kernel.models.roaming import OcpiPartner
from kernel.timeutil import format_rfc3339, utcnow
from ocpi.push.outbox_message import queue_push
from ocpi.push.push_state import HIDDEN, find_state, new_state, remember_evse
from ocpi.push.recipients import may_see_cpo, party_pks, receiving_roles, registered_partners
from ocpi.render_objects import load_location, location_last_updated, location_object
from ocpi.visibility import location_view, shape


async def enqueue_location(
    location: Location | int, db_session: AsyncSession, *, partner_id: int | None = None
) -> int:
    """PUT the Location (with its EVSEs and live statuses) to every registered partner that may see it
    (or only to ``partner_id``)."""
    loc_pk = location if isinstance(location, int) else location.id
    await db_session.flush()
    loc = await load_location(db_session, loc_pk)
    if loc is None:
        return 0
    cpo = await db_session.get(Party, loc.cpo_id)
    if cpo is None:
        return 0
    body = location_object(loc, cpo)
    stamp = format_rfc3339(location_last_updated(loc))
    count = 0
    for partner in await registered_partners(db_session):
        if not may_see_cpo(partner, loc.cpo_id) or not partner.endpoint("locations"):
            continue
        if partner_id is not None and partner.id != partner_id:
            continue
        visible, entries = await location_view(db_session, loc, party_pks(partner))
        state = await find_state(db_session, partner.id, "location", str(loc.id))
        if not visible and (state is None or state.last_status == HIDDEN):
            continue
        for role in receiving_roles(partner)[:1]:
            path = f"/{cpo.country_code}/{cpo.party_id}/{loc.ocpi_id}"
            mine = shape(body, entries if visible else [])
            count += await queue_push(
                db_session,
                partner,
                role,
                cpo,
                module="locations",
                method="PUT",
                path=path,
                body=mine,
                key=f"{loc.id}",
            )
            mark = stamp if visible else HIDDEN
            if state is None:
                await new_state(
                    db_session,
                    partner_id=partner.id,
                    kind="location",
                    object_key=str(loc.id),
                    last_status=mark,
                )
            else:
                state.last_status = mark
            if visible:
                for evse in loc.evses:
                    await remember_evse(db_session, partner.id, evse)
    return count


async def enqueue_evse_status(evse: EVSE | int, db_session: AsyncSession, status: str | None = None) -> int:
    """PATCH the EVSE's status to every partner that may see its location. Sets ``evse.status`` when
    ``status`` is given, and bumps ``last_updated`` of the EVSE and its location."""
    evse_row = await db_session.get(EVSE, evse if isinstance(evse, int) else evse.id)
    if evse_row is None:
        return 0
    now = utcnow()
    if status is not None:
        evse_row.status = status
    evse_row.last_updated = now
    loc = await db_session.get(Location, evse_row.location_id)
    if loc is None:
        return 0
    loc.last_updated = now
    await db_session.flush()
    cpo = await db_session.get(Party, loc.cpo_id)
    if cpo is None:
        return 0
    body = {"status": evse_row.status, "last_updated": format_rfc3339(now)}
    count = 0
    for partner in await registered_partners(db_session):
        if not may_see_cpo(partner, loc.cpo_id) or not partner.endpoint("locations"):
            continue
        visible, _entries = await location_view(db_session, loc, party_pks(partner))
        loc_state = await find_state(db_session, partner.id, "location", str(loc.id))
        if not visible or loc_state is None or loc_state.last_status == HIDDEN:
            # The partner has not received this location yet (a PATCH would be refused, 2003), or may no
            # longer see it: the whole location goes out instead (or nothing), in the same per-location order.
            count += await enqueue_location(loc.id, db_session, partner_id=partner.id)
            continue
        count += await _patch_evse(db_session, partner, cpo, loc, evse_row, body)
        loc_state.last_status = format_rfc3339(now)
    return count


async def _patch_evse(
    db_session: AsyncSession,
    partner: OcpiPartner,
    cpo: Party,
    loc: Location,
    evse: EVSE,
    body: dict[str, Any],
) -> int:
    """Queue one EVSE PATCH to one partner (in the location's order) and remember what it was sent."""
    queued = await queue_push(
        db_session,
        partner,
        receiving_roles(partner)[0],
        cpo,
        module="locations",
        method="PATCH",
        path=f"/{cpo.country_code}/{cpo.party_id}/{loc.ocpi_id}/{evse.uid}",
        body=body,
        key=f"{loc.id}",
    )
    await remember_evse(db_session, partner.id, evse)
    return int(queued)


async def enqueue_evse_patch(
    db_session: AsyncSession, partner: OcpiPartner, loc: Location, evse: EVSE
) -> int:
    """PATCH the EVSE's current status (as stored) to one partner that has its location (the scanner)."""
    cpo = await db_session.get(Party, loc.cpo_id)
    if cpo is None:
        return 0
    body = {"status": evse.status, "last_updated": format_rfc3339(evse.last_updated)}
    return await _patch_evse(db_session, partner, cpo, loc, evse, body)
