"""Pushes of Tariffs: PUT every tariff version (dynamic ones included) to every partner that may see its CPO,
once per version and partner; DELETE a tariff."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Party, TariffVersion
from ocpi.push.outbox_message import queue_push
from ocpi.push.recipients import may_see_cpo, receiving_roles, registered_partners
from ocpi.render_objects import tariff_object


async def enqueue_tariff(tariff: TariffVersion | int, db_session: AsyncSession) -> int:
    """PUT this tariff version to every partner that may see its CPO (once per version and partner)."""
    tv = await db_session.get(TariffVersion, tariff if isinstance(tariff, int) else tariff.id)
    if tv is None:
        return 0
    cpo = await db_session.get(Party, tv.cpo_id)
    if cpo is None:
        return 0
    body = tariff_object(tv, cpo)
    count = 0
    for partner in await registered_partners(db_session):
        if not may_see_cpo(partner, tv.cpo_id) or not partner.endpoint("tariffs"):
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
            dedupe_key=f"ocpi:{partner.id}:tariff:{tv.id}",
        )
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
