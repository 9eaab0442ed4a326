"""The hub as the eMSP of its hosted eMSP parties towards external CPOs: which parties those are, and their
tokens as an external CPO must see them.

A **hosted eMSP** is an eMSP party no partner role links (the hub's own, e.g. ``NL*EVH`` issuing fleet and
driver tokens), as a hosted CPO is a CPO party no partner role links. An **external CPO** is a registered
partner with a ``CPO`` role.

What a CPO sees of a token is its row (:func:`ocpi.modules.tokens.token_object`) with billing's holds
applied (``billing_holds`` on the token or its fleet, issue 14):

* an active ``block`` (dunning: unpaid invoice) → ``valid: false``: the CPO refuses the token locally, as the
  spec says of an invalid token, without asking the hub;
* an active ``lower_limit`` → ``whitelist: NEVER``: the CPO must ask real-time authorization at every start,
  where the hub answers ``NO_CREDIT`` once the lowered limit is used up (a CPO cannot check a spending limit);
* ``last_updated`` is the latest of the token's own and of every placement and release of a hold on it, so
  each change of what the CPO sees carries a newer ``last_updated`` than the state before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.types import UTCDateTime
from kernel.models import BillingHold, Party, PartyRole, Token
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole
from kernel.timeutil import format_rfc3339
from ocpi.render_objects import token_object

HOLD_BLOCK = "block"  # billing_holds.action values (billing.store.holds)
HOLD_LOWER_LIMIT = "lower_limit"


async def hosted_emsps(db_session: AsyncSession) -> list[Party]:
    """The eMSP parties the hub hosts: role EMSP and not a partner's role, in id order."""
    partner_parties = select(OcpiPartnerRole.party_pk)
    rows = await db_session.scalars(
        select(Party).where(Party.role == PartyRole.EMSP, Party.id.not_in(partner_parties)).order_by(Party.id)
    )
    return list(rows.all())


def cpo_roles(partner: OcpiPartner) -> list[OcpiPartnerRole]:
    """The partner's CPO roles (an external CPO has at least one)."""
    return [r for r in partner.roles if r.role == "CPO"]


@dataclass(frozen=True, slots=True)
class HeldState:
    """Billing's holds as a CPO sees them on one token."""

    blocked: bool = False
    lowered: bool = False
    changed_at: datetime | None = None  # the latest placement or release of a hold on the token or its fleet


async def held_states(db_session: AsyncSession, tokens: Sequence[Token]) -> dict[int, HeldState]:
    """The :class:`HeldState` of each token (by id), from the holds on the tokens and their fleets, in one
    query; a token without holds is absent."""
    if not tokens:
        return {}
    token_ids = [t.id for t in tokens]
    fleet_ids = sorted({t.fleet_id for t in tokens if t.fleet_id is not None})
    owner: ColumnElement[bool] = BillingHold.token_id.in_(token_ids)
    if fleet_ids:
        owner = or_(owner, BillingHold.fleet_id.in_(fleet_ids))
    rows = (
        await db_session.execute(
            select(
                BillingHold.token_id,
                BillingHold.fleet_id,
                BillingHold.action,
                BillingHold.since,
                BillingHold.released_at,
            ).where(owner)
        )
    ).all()
    out: dict[int, HeldState] = {}
    for token in tokens:
        blocked = lowered = False
        changed: datetime | None = None
        for token_id, fleet_id, action, since, released_at in rows:
            if token_id != token.id and (fleet_id is None or fleet_id != token.fleet_id):
                continue
            for moment in (since, released_at):
                if moment is not None and (changed is None or moment > changed):
                    changed = moment
            if released_at is None:
                blocked = blocked or action == HOLD_BLOCK
                lowered = lowered or action == HOLD_LOWER_LIMIT
        if changed is not None:
            out[token.id] = HeldState(blocked, lowered, changed)
    return out


def seen_last_updated(token: Token, held: HeldState | None) -> datetime:
    """The token's ``last_updated`` as a CPO sees it: its own, or the latest hold change when later."""
    if held is not None and held.changed_at is not None and held.changed_at > token.last_updated:
        return held.changed_at
    return token.last_updated


def seen_last_updated_sql() -> ColumnElement[datetime]:
    """:func:`seen_last_updated` as SQL over ``tokens``: what the Sender's ``date_from`` / ``date_to`` filter
    and its pages are ordered by, so a CPO pulling changes since its last pull gets a token whose hold was
    placed or released since, although the token's own row did not change. A hold's latest change is its
    release, else its placement."""
    latest_hold = (
        select(func.max(func.coalesce(BillingHold.released_at, BillingHold.since)))
        .where(
            or_(
                BillingHold.token_id == Token.id,
                and_(BillingHold.fleet_id.is_not(None), BillingHold.fleet_id == Token.fleet_id),
            )
        )
        .correlate(Token)
        .scalar_subquery()
    )
    seen = case((latest_hold > Token.last_updated, latest_hold), else_=Token.last_updated)
    return type_coerce(seen, UTCDateTime())


def cpo_token_object(token: Token, held: HeldState | None) -> dict[str, Any]:
    """The OCPI 2.2.1 Token an external CPO gets (list, push): the row with the holds applied."""
    obj = token_object(token)
    if held is not None:
        if held.blocked:
            obj["valid"] = False
        if held.lowered and obj.get("whitelist") != "NEVER":
            obj["whitelist"] = "NEVER"
    obj["last_updated"] = format_rfc3339(seen_last_updated(token, held))
    return obj
