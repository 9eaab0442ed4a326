"""Who receives a push: the registered partners that may see a CPO, the role of a partner that receives CPO
data, and the eMSP partner that issued a token (sessions and CDRs go only to it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, PartnerStatus

RECEIVING_ROLES = ("EMSP", "HUB", "NSP", "NAP", "SCSP", "OTHER")


async def registered_partners(db_session: AsyncSession) -> list[OcpiPartner]:
    """Every registered partner, oldest first."""
    rows = await db_session.scalars(
        select(OcpiPartner).where(OcpiPartner.status == PartnerStatus.REGISTERED).order_by(OcpiPartner.id)
    )
    return list(rows.all())


def receiving_roles(partner: OcpiPartner) -> list[OcpiPartnerRole]:
    """The partner's roles that receive CPO data (eMSPs, hubs; others too when they expose a receiver)."""
    preferred = [r for r in partner.roles if r.role in RECEIVING_ROLES]
    return preferred or list(partner.roles)


def may_see_cpo(partner: OcpiPartner, cpo_id: int) -> bool:
    """Has the partner a roaming agreement with the CPO (``allowed_cpo_ids``, None: every hosted CPO)."""
    return partner.allowed_cpo_ids is None or cpo_id in partner.allowed_cpo_ids


def party_pks(partner: OcpiPartner) -> list[int]:
    """The parties the partner's roles stand for (the owners of the tokens it issued)."""
    return [r.party_pk for r in partner.roles]


async def token_emsp(
    db_session: AsyncSession, emsp_party_pk: int | None
) -> tuple[OcpiPartner, OcpiPartnerRole] | None:
    """The registered partner (and its role) of the eMSP party that issued a token; None when there is none."""
    if emsp_party_pk is None:
        return None
    role = await db_session.scalar(select(OcpiPartnerRole).where(OcpiPartnerRole.party_pk == emsp_party_pk))
    if role is None:
        return None
    partner = await db_session.get(OcpiPartner, role.partner_id)
    if partner is None or partner.status != PartnerStatus.REGISTERED:
        return None
    return partner, role
