"""Token authorization: may this RFID/app token charge here?

Order of decisions for a token uid presented at a charger:

1. Tokens in the hub's ``tokens`` table (fleet tokens and roaming tokens pushed by eMSPs over OCPI):
   ``valid = false`` -> Blocked; ``data["valid_until"]`` in the past -> Expired; whitelist ``NEVER`` -> ask the
   real-time authorizer (below), Invalid if there is none; a monthly spending limit
   (``monthly_limit``/``limit_currency``) that is used up -> NoCredit (Blocked in 1.6).
   Billing's holds for an unpaid invoice (``billing_holds``, read on every call, so every process enforces
   them at once) come after the validity and expiry checks and before real-time: a block on the token or its
   fleet -> Blocked "unpaid invoice <number>"; a lowered limit -> the lower of it and the token's own limit
   is the month's limit -> NoCredit.
   The uid is compared case-insensitively (OCPP 1.6 idTag is a CiString20, OCPI's uid a CiString36). Rows
   that differ only in the uid's casing (same country_code, party_id and type) are one token: its newest row
   (by ``last_updated``, a blocked row winning a tie) decides, so a token blocked under one casing is blocked
   under every casing.
   An idTag of the mapped shape (``EVH`` + 17 hex digits, :mod:`kernel.id_tags`) is also the token
   whose uid is longer than OCPP 1.6's 20 characters and maps to it: the hub sent that idTag to a 1.6 charger
   for a remote start, and the charger presents it back in Authorize/StartTransaction.
   A uid belongs to one issuer (:mod:`kernel.token_uids`): when rows of several issuers present it (stored
   before that rule), only the first stored issuer's rows are considered, so a later intruder never captures
   the session and the owner's block holds (the ambiguity is logged).
2. Unknown tokens -> the :class:`~kernel.seams.RealTimeAuthorizer` in ``hub.services.realtime_authorizer``
   (the OCPI package plugs in there), else Invalid.

Monthly spending = the token's CDR totals (``cdrs.total_cost_incl_vat``, credits included, in the limit's
currency, CDRs ending in the current UTC month) + what its running sessions of this month have cost so far
(``sessions.data["cost_so_far"]``, kept by pricing when it estimates running sessions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.id_tags import is_mapped
from kernel.models import BillingDocument, BillingHold, Cdr, ChargingSession, SessionStatus, Token
from kernel.money import format_amount
from kernel.seams import RealTimeAuthorizer, Services
from kernel.timeutil import parse_datetime, utcnow
from kernel.token_uids import holder_rows

ACCEPTED = "Accepted"
BLOCKED = "Blocked"
EXPIRED = "Expired"
INVALID = "Invalid"
NO_CREDIT = "NoCredit"  # 2.0.1; answered as Blocked in 1.6
HOLD_BLOCK = "block"  # billing_holds.action (issue 14: billing's holds for unpaid invoices)
HOLD_LOWER_LIMIT = "lower_limit"


@dataclass(frozen=True)
class AuthResult:
    """The outcome, in OCPP terms (``status`` is an OCPP 1.6 AuthorizationStatus / 2.0.1 value)."""

    status: str
    token_id: int | None = None
    reason: str = ""
    expiry: datetime | None = None
    auth_method: str = "WHITELIST"
    authorization_reference: str | None = None  # the eMSP's, from real-time authorization (OCPI)

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def monthly_spending(
    db_session: AsyncSession, token: Token, now: datetime, currency: str | None = None
) -> Decimal:
    """What ``token`` has spent this month in ``currency`` (its limit currency by default): CDRs + running
    sessions."""
    currency = currency or token.limit_currency
    since = month_start(now)
    # summed in Python: exact on every backend (SQLite keeps amounts as text)
    totals = await db_session.scalars(
        select(Cdr.total_cost_incl_vat).where(
            Cdr.token_id == token.id, Cdr.currency == currency, Cdr.end_date_time >= since
        )
    )
    total = sum((t for t in totals if t is not None), Decimal(0))
    running = await db_session.execute(
        select(ChargingSession.data, ChargingSession.currency).where(
            ChargingSession.token_id == token.id,
            ChargingSession.status == SessionStatus.ACTIVE,
            ChargingSession.start_time >= since,
        )
    )
    for data, session_currency in running:
        cost = (data or {}).get("cost_so_far")
        if cost is not None and (session_currency is None or session_currency == currency):
            total += Decimal(str(cost))
    return total


def current_rows(tokens: Sequence[Token]) -> list[Token]:
    """One row per token: among rows differing only in the uid's casing (same country_code, party_id and
    type), the newest by ``last_updated`` (a blocked one on a tie). Order of first appearance is kept."""
    chosen: dict[tuple[str, str, str, str], Token] = {}
    for token in tokens:
        key = (token.country_code.upper(), token.party_id.upper(), token.type, token.uid.upper())
        held = chosen.get(key)
        if held is None or (token.last_updated, not token.valid) > (held.last_updated, not held.valid):
            chosen[key] = token
    return list(chosen.values())


class Authorizer:
    """Decides on tokens from the database, with the real-time seam for unknown ones."""

    def __init__(self, db: Database, services: Services | None = None) -> None:
        self.db = db
        self.services = services if services is not None else Services()

    @property
    def realtime(self) -> RealTimeAuthorizer | None:
        """The hub's real-time authorizer, read at each call (OCPI installs it after the gateway)."""
        return self.services.realtime_authorizer

    async def authorize(
        self,
        uid: str,
        token_type: str = "RFID",
        *,
        charge_point_id: int,
        location_id: int | None = None,
        evse_pk: int | None = None,
    ) -> AuthResult:
        now = utcnow()
        async with self.db.session() as db_session:
            key = uid.upper()
            match = Token.uid_key == key
            if is_mapped(uid):  # the tag a 1.6 charger got for a longer uid
                match = or_(match, Token.ocpp16_id_tag == key)
            tokens = holder_rows(
                (await db_session.scalars(select(Token).where(match).order_by(Token.id))).all(), uid
            )
            decision: AuthResult | None = None
            for token in sorted(current_rows(tokens), key=lambda t: not t.valid):
                decision = await decide(db_session, token, now)
                if decision is None or decision.accepted:
                    break
        if tokens and decision is not None:
            return decision
        rt = self.realtime
        if rt is not None:
            answer = await rt.authorize(
                uid, token_type, charge_point_id=charge_point_id, location_id=location_id, evse_pk=evse_pk
            )
            if isinstance(answer, AuthResult):
                return answer
            if answer is not None:
                return AuthResult(
                    answer.status,
                    answer.token_id,
                    answer.reason,
                    answer.expiry,
                    answer.auth_method,
                    answer.authorization_reference,
                )
        reason = "token must be authorized in real time" if tokens else "unknown token"
        return AuthResult(INVALID, tokens[0].id if tokens else None, reason)


async def decide(
    db_session: AsyncSession, token: Token, now: datetime, *, as_issuer: bool = False
) -> AuthResult | None:
    """The decision for a known token; None when it must go to the real-time authorizer (whitelist ``NEVER``).
    ``as_issuer``: the hub decides as the token's issuer (OCPI real-time authorization asked of the hub's own
    eMSP, :mod:`ocpi.modules.tokens_sender`): whitelist ``NEVER`` is decided here, never None."""
    if not token.valid:
        return AuthResult(BLOCKED, token.id, "token is not valid")
    valid_until = (token.data or {}).get("valid_until")
    expiry = parse_datetime(valid_until) if isinstance(valid_until, str) else None
    if expiry is not None and expiry <= now:
        return AuthResult(EXPIRED, token.id, "token expired", expiry)
    held = await held_decision(db_session, token, now, expiry)
    if held is not None:
        return held
    if token.whitelist == "NEVER" and not as_issuer:
        return None
    if token.monthly_limit is not None:
        spent = await monthly_spending(db_session, token, now)
        if spent >= token.monthly_limit:
            return AuthResult(
                NO_CREDIT,
                token.id,
                f"monthly limit {token.monthly_limit} {token.limit_currency} reached ({spent})",
                expiry,
            )
    return AuthResult(ACCEPTED, token.id, "", expiry)


async def held_decision(
    db_session: AsyncSession, token: Token, now: datetime, expiry: datetime | None
) -> AuthResult | None:
    """Billing's holds for unpaid invoices (``billing_holds``, active while ``released_at`` is NULL) on the
    token or its fleet, in one indexed query: a block -> Blocked "unpaid invoice <number>"; a lowered
    limit -> the lower of it and the token's own limit (same currency) is the month's limit -> NoCredit."""
    owner = BillingHold.token_id == token.id
    if token.fleet_id is not None:
        owner = or_(owner, BillingHold.fleet_id == token.fleet_id)
    holds = (
        await db_session.execute(
            select(BillingHold.action, BillingHold.limit, BillingHold.currency, BillingDocument.number)
            .join(BillingDocument, BillingDocument.id == BillingHold.document_id)
            .where(BillingHold.released_at.is_(None), owner)
            .order_by(BillingHold.id)
        )
    ).all()
    for action, _, _, number in holds:
        if action == HOLD_BLOCK:
            return AuthResult(BLOCKED, token.id, f"unpaid invoice {number}", expiry)
    lowest: dict[str, tuple[Decimal, str]] = {}  # per currency: the lowest lowered limit and its invoice
    for action, limit, currency, number in holds:
        if action != HOLD_LOWER_LIMIT or limit is None or currency is None:
            continue
        if currency not in lowest or limit < lowest[currency][0]:
            lowest[currency] = (limit, number)
    for currency, (limit, number) in lowest.items():  # spending summed once per currency
        if token.monthly_limit is not None and token.limit_currency == currency:
            limit = min(limit, token.monthly_limit)
        spent = await monthly_spending(db_session, token, now, currency)
        if spent >= limit:
            return AuthResult(
                NO_CREDIT,
                token.id,
                f"monthly limit {format_amount(limit, currency)} (lowered for unpaid invoice {number}) "
                f"reached ({format_amount(spent, currency)})",
                expiry,
            )
    return None
