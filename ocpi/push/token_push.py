"""Pushes of the hosted eMSPs' tokens to every external CPO partner's tokens Receiver (OCPI "in both
directions": the hub is those CPOs' eMSP): :func:`hold_hook`, run in a billing hold's transaction, and
:class:`TokenWatch`, the catch-up job that finds what else changed.

A token is PUT whole (``/{country_code}/{party_id}/{uid}?type=``; 2.1.1: no ``type``, the body translated at
delivery) as the CPO must see it (:func:`ocpi.emsp_tokens.cpo_token_object`: billing's ``block`` hold →
``valid: false``, a ``lower_limit`` hold → ``whitelist: NEVER``, ``last_updated`` the latest of the token's
and of its holds' changes), when it is created or changed and when a hold on it or on its fleet is placed or
released. What each partner was last queued is its push state (kind ``token``, ``last_status`` = the
``last_updated`` it carried, its ``valid`` and ``whitelist``): a state is queued only when it differs and is
not older than the last one queued, so a late computation never overrides a newer state; the ordering key
(per partner and token) delivers one token's PUTs in order, and the dedupe key (per partner, token and
state) makes two processes queue one state once — the hook and the job never send one state twice.

A hold's pushes are queued by :func:`hold_hook` (``hub.hooks.hold``; billing runs it from the session, as it
may not import OCPI: :func:`kernel.seams.hooks_of`) in the hold's own transaction, in a savepoint: a hold and
its outbox messages commit together (a crash or rollback loses neither alone, and sends nothing for a hold
that never committed), and the outbox dispatcher sends them at its next pump. :class:`TokenWatch` (the
component's ``ocpi-token-push`` job) is the catch-up for the rest: tokens created or changed (``updated_at``),
holds whose hook failed, and, at its first run and whenever the set of CPO partners changes, every hosted
token. Its comparison with the push state is what makes it exact: nothing is pushed twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import BillingHold, Party, Token
from kernel.models.roaming import OcpiPartner, OcpiPushState
from kernel.timeutil import utcnow
from ocpi.emsp_tokens import cpo_roles, cpo_token_object, held_states, hosted_emsps, seen_last_updated
from ocpi.push.outbox_message import queue_push
from ocpi.push.push_state import find_state, new_state
from ocpi.push.recipients import registered_partners
from ocpi.v211 import VERSION_211

log = logging.getLogger(__name__)

STATE_KIND = "token"
WHITELIST_CODES = {"ALWAYS": "W", "ALLOWED": "A", "ALLOWED_OFFLINE": "O", "NEVER": "N"}
BATCH = 500


def fingerprint(last_updated: datetime, valid: bool, whitelist: str) -> str:
    """The push state of one token state: ``<last_updated>|<valid 1/0>|<whitelist code>`` (fits 32 chars and
    sorts by ``last_updated``)."""
    stamp = last_updated.strftime("%Y%m%dT%H%M%S.%f")
    return f"{stamp}|{1 if valid else 0}|{WHITELIST_CODES.get(whitelist, '?')}"


def _stamp(state: str | None) -> str:
    return (state or "").split("|", 1)[0]


async def cpo_partners(db_session: AsyncSession) -> list[OcpiPartner]:
    """The registered external CPOs with a tokens Receiver, oldest first."""
    return [p for p in await registered_partners(db_session) if cpo_roles(p) and p.endpoint("tokens")]


async def enqueue_tokens(
    db_session: AsyncSession, tokens: Sequence[Token], partners: Sequence[OcpiPartner] | None = None
) -> int:
    """Queue the PUT of each hosted token whose state ``partners`` (default: every external CPO) were not
    last queued; the number of messages queued."""
    emsps = {e.id: e for e in await hosted_emsps(db_session)}
    tokens = [t for t in tokens if t.emsp_id in emsps]
    if partners is None:
        partners = await cpo_partners(db_session)
    if not tokens or not partners:
        return 0
    held = await held_states(db_session, tokens)
    states = {
        (s.partner_id, s.object_key): s
        for s in await db_session.scalars(
            select(OcpiPushState).where(
                OcpiPushState.partner_id.in_([p.id for p in partners]),
                OcpiPushState.kind == STATE_KIND,
                OcpiPushState.object_key.in_([str(t.id) for t in tokens]),
            )
        )
    }
    count = 0
    for token in tokens:
        body = cpo_token_object(token, held.get(token.id))
        state_now = fingerprint(
            seen_last_updated(token, held.get(token.id)), body["valid"], body["whitelist"]
        )
        for partner in partners:
            emsp = emsps[token.emsp_id or 0]
            count += await _queue(db_session, partner, emsp, token, body, state_now, states)
    return count


async def _queue(
    db_session: AsyncSession,
    partner: OcpiPartner,
    emsp: Party,
    token: Token,
    body: dict,
    state_now: str,
    states: dict[tuple[int, str], OcpiPushState],
) -> int:
    key = str(token.id)
    state = states.get((partner.id, key))
    if state is not None and (
        state.last_status == state_now or _stamp(state.last_status) > _stamp(state_now)
    ):
        return 0  # the partner has this state, or a newer one was queued
    uid = quote(token.uid, safe="")
    path = f"/{token.country_code}/{token.party_id}/{uid}"
    if (partner.version or "") != VERSION_211:
        path += f"?type={token.type}"
    queued = await queue_push(
        db_session,
        partner,
        cpo_roles(partner)[0],
        emsp,  # the sender: the routing headers go from the hosted eMSP to the partner's CPO role
        module="tokens",
        method="PUT",
        path=path,
        body=body,
        key=key,
        dedupe_key=f"ocpi:{partner.id}:token:{token.id}:{state_now}",
    )
    if state is None:
        state = await new_state(
            db_session, partner_id=partner.id, kind=STATE_KIND, object_key=key, last_status=state_now
        )
        if state is None:  # a concurrent transaction created it first
            state = await find_state(db_session, partner.id, STATE_KIND, key)
    if state is not None and _stamp(state.last_status) <= _stamp(state_now):
        state.last_status = state_now
    if state is not None:
        states[(partner.id, key)] = state
    return int(queued)


async def enqueue_token(token: Token | int, db_session: AsyncSession) -> int:
    """Queue the PUT of one hosted token to every external CPO that was not last queued its state."""
    row = await db_session.get(Token, token if isinstance(token, int) else token.id)
    return 0 if row is None else await enqueue_tokens(db_session, [row])


async def hold_hook(db_session: AsyncSession, hold: BillingHold) -> None:
    """For ``hub.hooks.hold`` (billing, when it placed or released ``hold``, in that transaction): queue the
    PUT of each hosted token the hold covers (its token, or its fleet's tokens) to every external CPO, in a
    savepoint (a failure never loses the hold; :class:`TokenWatch` catches up)."""
    owner = Token.id == hold.token_id if hold.token_id is not None else Token.fleet_id == hold.fleet_id
    try:
        async with db_session.begin_nested():
            partners = await cpo_partners(db_session)
            if not partners:
                return
            ids = list((await db_session.scalars(select(Token.id).where(owner).order_by(Token.id))).all())
            for at in range(0, len(ids), BATCH):
                rows = (
                    await db_session.scalars(select(Token).where(Token.id.in_(ids[at : at + BATCH])))
                ).all()
                await enqueue_tokens(db_session, rows, partners)
    except Exception:
        log.exception("could not queue the token pushes of hold %s; the token job will retry", hold.id)


class TokenWatch:
    """Finds the hosted tokens whose state changed and queues their pushes (:func:`enqueue_tokens`)."""

    def __init__(self, db: Database, *, overlap: timedelta = timedelta(seconds=10)) -> None:
        self.db = db
        self.overlap = overlap  # transactions that committed after a later one's scan saw it
        self.since: datetime | None = None  # None: the next run looks at every hosted token
        self.partner_ids: list[int] | None = None

    async def run(self) -> int:
        """One run: the number of messages queued."""
        started = utcnow()
        async with self.db.session() as db_session:
            partners = await cpo_partners(db_session)
            emsp_ids = [e.id for e in await hosted_emsps(db_session)]
        partner_ids = [p.id for p in partners]
        if partner_ids != self.partner_ids:
            self.since = None  # a new CPO partner gets every token
        if not partners or not emsp_ids:
            self.partner_ids, self.since = partner_ids, started
            return 0
        count = await (self._all(emsp_ids) if self.since is None else self._changed(emsp_ids, self.since))
        self.partner_ids, self.since = partner_ids, started
        return count

    async def _changed(self, emsp_ids: list[int], since: datetime) -> int:
        after = since - self.overlap
        async with self.db.session() as db_session:
            holds = (
                await db_session.execute(
                    select(BillingHold.token_id, BillingHold.fleet_id).where(
                        or_(BillingHold.since >= after, BillingHold.released_at >= after)
                    )
                )
            ).all()
            owner: ColumnElement[bool] = Token.updated_at >= after
            token_ids = {t for t, _ in holds if t is not None}
            fleet_ids = {f for _, f in holds if f is not None}
            if token_ids:
                owner = or_(owner, Token.id.in_(sorted(token_ids)))
            if fleet_ids:
                owner = or_(owner, Token.fleet_id.in_(sorted(fleet_ids)))
            ids = list(
                (
                    await db_session.scalars(
                        select(Token.id).where(Token.emsp_id.in_(emsp_ids), owner).order_by(Token.id)
                    )
                ).all()
            )
        return await self._push(ids)

    async def _all(self, emsp_ids: list[int]) -> int:
        async with self.db.session() as db_session:
            ids = list(
                (
                    await db_session.scalars(
                        select(Token.id).where(Token.emsp_id.in_(emsp_ids)).order_by(Token.id)
                    )
                ).all()
            )
        return await self._push(ids)

    async def _push(self, ids: list[int]) -> int:
        count = 0
        for at in range(0, len(ids), BATCH):
            async with self.db.session() as db_session:
                rows = (
                    await db_session.scalars(select(Token).where(Token.id.in_(ids[at : at + BATCH])))
                ).all()
                count += await enqueue_tokens(db_session, rows)
        return count
