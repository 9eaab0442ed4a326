"""Pushes of Tariffs: PUT tariff versions (dynamic ones included) to every partner that may see its CPO; DELETE
a tariff.

A partner holds one object per tariff id (the last PUT wins), so it must receive the versions of a tariff id in
increasing order only. Three rules make that hold: :func:`enqueue_tariff` queues a version only while it is the
latest of its tariff id and newer than what the partner was last queued (push state ``tariff``,
``{cpo_id}:{tariff_id}`` -> version number); the scanner looks at the latest version of each tariff id only;
the sender skips a queued PUT that a newer version superseded meanwhile (:func:`superseded`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import OutboxMessage, Party, TariffVersion
from ocpi.push.outbox_message import queue_push
from ocpi.push.push_state import find_state, new_state
from ocpi.push.recipients import may_see_cpo, receiving_roles, registered_partners
from ocpi.render_objects import tariff_object
from tariffs import published_start

STATE_KIND = "tariff"
"""Push state kind: ``object_key`` ``{cpo_id}:{tariff_id}``, ``last_status`` the last version number queued."""


def dedupe_key(partner_id: int, version_row_id: int) -> str:
    """The outbox dedupe key of the PUT of one stored version (row id) to one partner."""
    return f"ocpi:{partner_id}:tariff:{version_row_id}"


def version_row_id(message: OutboxMessage) -> int | None:
    """The stored version (row id) a queued tariff PUT carries, from its dedupe key; None for other messages."""
    payload = message.payload or {}
    if payload.get("module") != "tariffs" or payload.get("method", "PUT") != "PUT" or not message.dedupe_key:
        return None
    head, _, row_id = message.dedupe_key.rpartition(":")
    if not head.endswith(":tariff") or not row_id.isdigit():
        return None
    return int(row_id)


async def superseded(db_session: AsyncSession, message: OutboxMessage) -> int | None:
    """The number of a newer version of the tariff a queued PUT carries (the PUT must then not be sent), or
    None when the message is not a tariff PUT or its version is still the latest."""
    row_id = version_row_id(message)
    if row_id is None:
        return None
    tv = await db_session.get(TariffVersion, row_id)
    if tv is None:
        return None
    latest = await latest_number(db_session, tv.cpo_id, tv.tariff_id)
    return latest if latest > tv.version else None


async def latest_number(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> int:
    """The highest stored version number of the tariff id (0 when none)."""
    number = await db_session.scalar(
        select(func.max(TariffVersion.version)).where(
            TariffVersion.cpo_id == cpo_id, TariffVersion.tariff_id == tariff_id
        )
    )
    return int(number or 0)


def _queued_version(state_status: str | None) -> int:
    return int(state_status) if state_status and state_status.isdigit() else 0


async def enqueue_tariff(tariff: TariffVersion | int, db_session: AsyncSession) -> int:
    """PUT this tariff version to every partner that may see its CPO, if it is the latest version of its
    tariff id and newer than the version last queued for the partner (once per version and partner)."""
    tv = await db_session.get(TariffVersion, tariff if isinstance(tariff, int) else tariff.id)
    if tv is None:
        return 0
    cpo = await db_session.get(Party, tv.cpo_id)
    if cpo is None:
        return 0
    if await latest_number(db_session, tv.cpo_id, tv.tariff_id) > tv.version:
        return 0  # superseded: the partner gets the newer version, never this one after it
    body = tariff_object(tv, cpo, await published_start(db_session, tv))
    object_key = f"{cpo.id}:{tv.tariff_id}"
    count = 0
    for partner in await registered_partners(db_session):
        if not may_see_cpo(partner, tv.cpo_id) or not partner.endpoint("tariffs"):
            continue
        state = await find_state(db_session, partner.id, STATE_KIND, object_key)
        if state is not None and _queued_version(state.last_status) >= tv.version:
            continue
        role = receiving_roles(partner)[0]
        path = f"/{cpo.country_code}/{cpo.party_id}/{body['id']}"
        count += await queue_push(
            db_session,
            partner,
            role,
            cpo,
            module="tariffs",
            method="PUT",
            path=path,
            body=body,
            key=f"{cpo.id}:{body['id']}",
            dedupe_key=dedupe_key(partner.id, tv.id),
        )
        if state is None:
            state = await new_state(
                db_session,
                partner_id=partner.id,
                kind=STATE_KIND,
                object_key=object_key,
                last_status=str(tv.version),
            )
        if state is None:  # a concurrent transaction created it first: raise it to this version if lower
            state = await find_state(db_session, partner.id, STATE_KIND, object_key)
        if state is not None and _queued_version(state.last_status) < tv.version:
            state.last_status = str(tv.version)
    return count


async def enqueue_tariff_delete(cpo_id: int, tariff_id: str, db_session: AsyncSession) -> int:
    """DELETE the tariff at every partner that may see its CPO."""
    cpo = await db_session.get(Party, cpo_id)
    if cpo is None:
        return 0
    count = 0
    for partner in await registered_partners(db_session):
        if not may_see_cpo(partner, cpo_id) or not partner.endpoint("tariffs"):
            continue
        role = receiving_roles(partner)[0]
        path = f"/{cpo.country_code}/{cpo.party_id}/{tariff_id}"
        count += await queue_push(
            db_session,
            partner,
            role,
            cpo,
            module="tariffs",
            method="DELETE",
            path=path,
            body=None,
            key=f"{cpo.id}:{tariff_id}",
        )
    return count
