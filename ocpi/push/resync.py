"""Re-sync of a partner (issue 13): what was parked for it is sent again as the CURRENT state of its object, so a
partner that failed for a while ends up with what the hub has, in object order, never a stale state after a
newer one.

A parked message keeps blocking its ordering key (:mod:`kernel.outbox`), so for each object whose first open
message is parked, the rows of that object (the parked one and everything queued behind it) are either

* **replaced**: a tariff (the PUT of its latest version, or the DELETE when the last thing queued was a
  DELETE), a location (the PUT of the whole location with its EVSEs) and a session (the PUT of the whole
  session) are queued afresh from the database, and the old rows are closed ``superseded`` with
  ``result.superseded_by`` naming the new message; ``ocpi_push_state`` is reset to what that PUT carries, so
  later PATCHes are computed against what the partner will really have;
* or **released**: a CDR POST (immutable), a command result and anything else go back to pending as they are.

Objects are re-queued tariffs first, then locations, sessions, CDRs and the rest (the ordering key keeps each
object's own order). Triggers: the first successful delivery after failures (the sender), the push scanner
(partners that delivered since something was parked; a partner whose messages were all given up gets one of
them released as a probe), ``evhub partners resync`` and ``evhub outbox retry``.
An automatic re-sync does not repeat itself on a message that a re-sync produced and the partner refused again
(``payload.resync``): such a message stays parked for an operator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kernel.db.engine import Database
from kernel.models import ChargingSession, Location, OutboxMessage, OutboxStatus, Party, TariffVersion, Token
from kernel.models.roaming import OcpiPartner, OcpiPushState, PartnerStatus
from kernel.outbox import GAVE_UP, OPEN_STATUSES, REFUSED, release, supersede
from ocpi.push.location_push import enqueue_location
from ocpi.push.outbox_message import CHANNEL, queue_push
from ocpi.push.recipients import may_see_cpo, receiving_roles, token_emsp
from ocpi.push.session_push import enqueue_session_update
from ocpi.push.tariff_push import STATE_KIND, enqueue_tariff

log = logging.getLogger(__name__)

ORDER = {"tariffs": 0, "locations": 1, "sessions": 2, "cdrs": 3}
"""The order objects are re-queued in (anything else after the CDRs)."""


@dataclass
class ResyncReport:
    """What one re-sync did: objects whose rows were replaced by their current state, messages released for
    another attempt, rows closed as superseded, and objects left parked (automatic re-sync only)."""

    replaced: int = 0
    released: int = 0
    superseded: int = 0
    left_parked: int = 0
    objects: list[str] = field(default_factory=list)


class _Raced(Exception):
    """The rows of an object changed while this re-sync closed them (a concurrent re-sync won)."""


async def _forget(db_session: AsyncSession, partner_id: int, kind: str, key: str) -> None:
    """Drop what the partner is believed to hold of an object (``ocpi_push_state``)."""
    await db_session.execute(
        delete(OcpiPushState).where(
            OcpiPushState.partner_id == partner_id,
            OcpiPushState.kind == kind,
            OcpiPushState.object_key == key,
        )
    )


def _module_and_key(ordering_key: str) -> tuple[str, str]:
    """``ocpi:<partner>:<module>:<object>`` -> (module, object); the object may contain colons."""
    parts = ordering_key.split(":", 3)
    return (parts[2], parts[3]) if len(parts) == 4 else ("", "")


async def _open_rows(db_session: AsyncSession, ordering_key: str) -> list[OutboxMessage]:
    return list(
        (
            await db_session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.channel == CHANNEL,
                    OutboxMessage.ordering_key == ordering_key,
                    OutboxMessage.status.in_(OPEN_STATUSES),
                )
                .order_by(OutboxMessage.id)
            )
        ).all()
    )


async def parked_objects(db_session: AsyncSession, partner_id: int) -> dict[str, list[OutboxMessage]]:
    """The open rows (oldest first) of every ordering key of the partner whose first open row is parked."""
    keys = (
        await db_session.scalars(
            select(OutboxMessage.ordering_key)
            .where(
                OutboxMessage.channel == CHANNEL,
                OutboxMessage.destination == str(partner_id),
                OutboxMessage.status == OutboxStatus.PARKED,
            )
            .distinct()
        )
    ).all()
    found = {}
    for key in keys:
        rows = await _open_rows(db_session, key)
        if rows and rows[0].status == OutboxStatus.PARKED:
            found[key] = rows
    return found


def _refused_again(row: OutboxMessage) -> bool:
    """A message a re-sync produced (or released) that the partner refused once more."""
    return bool((row.payload or {}).get("resync")) and (row.parked_reason or "").startswith(REFUSED)


async def resync_partner(
    db: Database, partner_id: int, *, automatic: bool = False, message_id: int | None = None
) -> ResyncReport:
    """Bring the partner up to date for every object with a parked message (or only the object of
    ``message_id``). ``automatic``: leave alone what a re-sync already re-sent and the partner refused again."""
    report = ResyncReport()
    async with db.session() as db_session:
        partner = await db_session.get(OcpiPartner, partner_id)
        if partner is None or partner.status != PartnerStatus.REGISTERED:
            return report
        objects = await parked_objects(db_session, partner_id)
    if message_id is not None:
        objects = {k: v for k, v in objects.items() if any(r.id == message_id for r in v)}
    order = sorted(
        objects.items(), key=lambda kv: (ORDER.get(_module_and_key(kv[0])[0], len(ORDER)), kv[1][0].id)
    )
    for ordering_key, rows in order:
        if automatic and _refused_again(rows[0]):
            report.left_parked += 1
            continue
        try:
            async with db.session() as db_session:
                await _resync_object(db_session, partner_id, ordering_key, report)
        except _Raced:  # another re-sync (another process) closed these rows first
            log.debug("%s was re-synced concurrently", ordering_key)
        except Exception:  # one object must not stop the others; it stays parked
            log.exception("could not re-sync %s", ordering_key)
    if report.objects:
        log.info(
            "re-synced partner %s: %d object(s) replaced by their current state, %d message(s) released",
            partner_id,
            report.replaced,
            report.released,
        )
    return report


async def _resync_object(
    db_session: AsyncSession, partner_id: int, ordering_key: str, report: ResyncReport
) -> None:
    module, key = _module_and_key(ordering_key)
    rows = await _open_rows(db_session, ordering_key)  # as they are now
    if not rows or rows[0].status != OutboxStatus.PARKED:
        return  # another re-sync or an operator got there first
    first = rows[0]
    if module not in ("tariffs", "locations", "sessions"):
        # immutable (a CDR) or not an object state (a command result): the same message once more
        if await release(db_session, [first.id]) == 1:
            await _mark_resync(db_session, [first.id])
            report.released += 1
            report.objects.append(ordering_key)
        return
    ids = [r.id for r in rows]
    # the guard: only one re-sync closes these rows (and queues the replacement)
    if await supersede(db_session, ids, "re-sync") != len(ids):
        raise _Raced(ordering_key)
    # a message of the object queued meanwhile (after the rows were read) is replaced too
    late = [r.id for r in await _open_rows(db_session, ordering_key) if r.id not in ids]
    await supersede(db_session, late, "re-sync")
    ids += late
    last_id = max(ids)
    if module == "tariffs":
        last = await db_session.get(OutboxMessage, last_id)
        deleted = last is not None and (last.payload or {}).get("method") == "DELETE"
        await _requeue_tariff(db_session, partner_id, key, deleted=deleted)
    elif module == "locations":
        queued = 0
        if key.isdigit() and await db_session.get(Location, int(key)) is not None:
            queued = await enqueue_location(int(key), db_session, partner_id=partner_id)
        if not queued:  # the partner may never have got it: it is sent whole when it may see it again
            await _forget(db_session, partner_id, "location", key)
    else:
        await _requeue_session(db_session, partner_id, key)
    new_ids = list(
        (
            await db_session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.channel == CHANNEL,
                    OutboxMessage.ordering_key == ordering_key,
                    OutboxMessage.id > last_id,
                )
            )
        ).all()
    )
    await _mark_resync(db_session, new_ids)
    replaced_by = (
        f"message {', '.join(map(str, new_ids))} (the current state, re-sync)"
        if new_ids
        else "nothing: the object is gone or no longer for this partner (re-sync)"
    )
    for row_id in ids:
        row = await db_session.get(OutboxMessage, row_id, populate_existing=True)
        if row is not None:
            row.result = {"superseded_by": replaced_by}
    report.replaced += 1
    report.superseded += len(ids)
    report.objects.append(ordering_key)


async def _mark_resync(db_session: AsyncSession, ids: list[int]) -> None:
    for row_id in ids:
        row = await db_session.get(OutboxMessage, row_id, populate_existing=True)
        if row is not None:
            row.payload = {**(row.payload or {}), "resync": True}


async def _requeue_tariff(db_session: AsyncSession, partner_id: int, key: str, *, deleted: bool) -> None:
    """PUT the latest version of the tariff (``<cpo_id>:<tariff_id>``) to the partner, or DELETE it again."""
    cpo_text, _, tariff_id = key.partition(":")
    partner = await db_session.get(OcpiPartner, partner_id)
    cpo = await db_session.get(Party, int(cpo_text)) if cpo_text.isdigit() else None
    if partner is None or cpo is None or not may_see_cpo(partner, cpo.id) or not partner.endpoint("tariffs"):
        return
    if deleted:
        await queue_push(
            db_session,
            partner,
            receiving_roles(partner)[0],
            cpo,
            module="tariffs",
            method="DELETE",
            path=f"/{cpo.country_code}/{cpo.party_id}/{tariff_id}",
            body=None,
            key=key,
        )
        return
    latest = await db_session.scalar(
        select(TariffVersion)
        .where(TariffVersion.cpo_id == cpo.id, TariffVersion.tariff_id == tariff_id)
        .order_by(TariffVersion.version.desc())
        .limit(1)
    )
    if latest is None:
        return
    # forget what was queued for this partner, so the latest version is queued for it again (its dedupe key
    # was freed by the supersede; the other partners' dedupe keys and push states keep them out)
    await _forget(db_session, partner_id, STATE_KIND, f"{cpo.id}:{latest.tariff_id}")
    await enqueue_tariff(latest.id, db_session)


async def _requeue_session(db_session: AsyncSession, partner_id: int, session_uid: str) -> None:
    """PUT the whole current session to the partner (its push state reset to what the PUT carries)."""
    cs = await db_session.scalar(select(ChargingSession).where(ChargingSession.session_uid == session_uid))
    if cs is None or cs.token_id is None:
        return
    token = await db_session.get(Token, cs.token_id)
    found = await token_emsp(db_session, token.emsp_id if token else None)
    if found is None or found[0].id != partner_id:
        return
    await _forget(db_session, partner_id, "session", session_uid)
    await enqueue_session_update(cs.id, db_session)


async def resync_recovered(db: Database) -> int:
    """The scheduled safety net (the push scanner): re-sync every registered partner that delivered something
    after its newest parked message was parked (it works again); and for a partner with nothing pending whose
    messages were all given up, release its oldest given-up message as a probe (retried with backoff: when it
    goes through, the first success re-syncs the rest). Returns how many objects were re-sent or released."""
    async with db.session() as db_session:
        newest_parked = (
            await db_session.execute(
                select(OutboxMessage.destination, func.max(OutboxMessage.updated_at))
                .where(OutboxMessage.channel == CHANNEL, OutboxMessage.status == OutboxStatus.PARKED)
                .group_by(OutboxMessage.destination)
            )
        ).all()
        due: list[int] = []
        probes: list[int] = []
        for destination, parked_at in newest_parked:
            if not destination.isdigit():
                continue
            partner = await db_session.get(OcpiPartner, int(destination))
            if partner is None or partner.status != PartnerStatus.REGISTERED or parked_at is None:
                continue
            if partner.last_success_at is not None and partner.last_success_at > parked_at:
                due.append(partner.id)
                continue
            probe = await _probe(db_session, destination)
            if probe is not None:
                probes.append(probe)
        count = await release(db_session, probes)
    for partner_id in due:
        report = await resync_partner(db, partner_id, automatic=True)
        count += report.replaced + report.released
    return count


async def _probe(db_session: AsyncSession, destination: str) -> int | None:
    """The oldest given-up message of a partner that has nothing pending the dispatcher may try (a pending
    message behind a parked one of its object is not tried), or None."""
    mine = (OutboxMessage.channel == CHANNEL, OutboxMessage.destination == destination)
    earlier = aliased(OutboxMessage)
    blocked = (
        select(earlier.id)
        .where(
            earlier.channel == OutboxMessage.channel,
            earlier.ordering_key == OutboxMessage.ordering_key,
            earlier.id < OutboxMessage.id,
            earlier.status.in_(OPEN_STATUSES),
        )
        .exists()
    )
    pending = await db_session.scalar(
        select(OutboxMessage.id).where(*mine, OutboxMessage.status == OutboxStatus.PENDING, ~blocked).limit(1)
    )
    if pending is not None:
        return None
    return await db_session.scalar(
        select(OutboxMessage.id)
        .where(
            *mine,
            OutboxMessage.status == OutboxStatus.PARKED,
            OutboxMessage.parked_reason.startswith(GAVE_UP),
        )
        .order_by(OutboxMessage.id)
        .limit(1)
    )
