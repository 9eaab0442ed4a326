"""Dunning in the database: each due step of each unpaid invoice done once, recorded with its rule.

:func:`run_dunning` walks the open issued invoices that have an account (selected in SQL: due by "today",
and something outstanding or a hold still active; :func:`open_invoices`), takes each one's standing from its
exact balance (:mod:`.balances`), its issuer's schedule (:mod:`.schedules`) and the keys of the steps already
done, and asks
:func:`billing.core.dunning.next_steps` what is due on the account's "today" (the hub's clock in the account's
time zone). Each step is done in its own transaction, which first inserts its ``billing_dunning_steps`` row (key
UNIQUE) and then makes its effect: a concurrent run on another process waits on that key and then skips it, a
crash rolls back both, so a rerun repeats nothing and misses nothing. The step first locks the invoice's row and
reads its balance again (a payment may have come in since the standing was read).

* ``retry_payment``: ``collect(db, document_id, attempt)``, given by the caller (:mod:`billing.dunning_job`
  passes ``billing.payments.collection.collect_document``; the store does not import the payments). The
  charge calls the provider, so it is not made inside the step's transaction: the step is claimed (committed)
  first, then collected, then its outcome written on the step. A crash between the claim and the charge loses
  that one attempt (the next occurrence retries); it never charges twice.
* ``reminder``: an e-mail through the durable outbox (channel ``email``, the receipt sender's payload shape),
  rendered in the account's language, dedupe key = the step key.
* ``lower_limit`` / ``block_tokens``: a hold (:mod:`.holds`) on the account's fleet or driver token.
* ``fee``: a ``billing_charges`` row (source key = the step key) that the next monthly invoice picks up.
* ``release``: the invoice's holds released (also done at once by :func:`.holds.release_if_settled`).

**Party (B2B) invoices** are not a customer's: a party's account (``kind`` ``party``: a CPO or eMSP billed
for roaming or a hub fee) is dunned with the **reminder rules** of its issuer's schedule only
(:func:`party_schedule`; no reminder rule: no dunning at all). B2B documents are paid by bank transfer, not
collected through the provider (no payment retry); a party has no tokens of its own, and blocking or limiting
the drivers of a CPO or eMSP for an invoice between businesses would punish the drivers (no hold, ever); and
no monthly invoice would ever carry a fee charged to it (no fee).

:func:`account_statuses` and :func:`invoice_steps` are what ``evhub dunning status``, the API and the billing
desk (the portal) show: :func:`dunning_state` is the one place an account's state is decided.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Select, and_, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from billing.core.dunning import (
    DunningAction,
    DunningError,
    DunningSchedule,
    DunningStep,
    next_steps,
)
from billing.store.accounts import PARTY
from billing.store.balances import PAYMENT, REFUND, SUCCEEDED, Balance, balances
from billing.store.balances import balance as balance_of
from billing.store.holds import BLOCK, LOWER_LIMIT, lock_document, place_hold, release_holds
from billing.store.reminders import enqueue_reminder
from billing.store.schedules import fee_vat_rate, schedule_of
from billing.store.steps import claim, stored_key
from kernel.db.engine import Database
from kernel.models import (
    BillingAccount,
    BillingCharge,
    BillingDocument,
    BillingDunningStep,
    BillingHold,
    BillingIssuer,
    BillingPayment,
)
from kernel.timeutil import to_local, utcnow

log = logging.getLogger(__name__)

INVOICE = "invoice"
CHUNK = 500
ZERO = Decimal("0")
Collect = Callable[[Database, int, int], Awaitable[Any]]


def _outcome(result: Any) -> Any:
    if result is None or isinstance(result, str | bool | int):
        return result
    status = getattr(result, "status", None)
    return str(status) if status is not None else str(result)


async def _retry(
    db: Database, issuer: BillingIssuer, document: BillingDocument, step: DunningStep, collect: Collect | None
) -> bool:
    async with db.session() as db_session:
        row = await claim(
            db_session,
            issuer,
            document,
            step,
            {"attempt": step.occurrence, "outcome": "claimed" if collect else None},
        )
        if row is None:
            return False
        row_id = row.id
    if collect is None:
        detail: dict[str, Any] = {"attempt": step.occurrence, "outcome": "unavailable"}
    else:
        try:
            result = await collect(db, document.id, step.occurrence)
            detail = {"attempt": step.occurrence, "outcome": _outcome(result)}
        except Exception as exc:  # recorded on the step; the next occurrence tries again
            log.warning("dunning retry %s failed: %s", step.key, exc)
            detail = {"attempt": step.occurrence, "outcome": "error", "error": str(exc)[:300]}
    async with db.session() as db_session:
        stored = await db_session.get(BillingDunningStep, row_id)
        if stored is not None:
            stored.detail = detail
    return True


async def _effect(
    db_session: AsyncSession,
    step: DunningStep,
    document: BillingDocument,
    account: BillingAccount,
    issuer: BillingIssuer,
    balance: Balance,
    today: date,
) -> dict[str, Any]:
    action = step.action
    if action is DunningAction.REMINDER:
        key = stored_key(issuer.key, step.key)
        return await enqueue_reminder(db_session, key, document, account, issuer, balance, today)
    if action in (DunningAction.LOWER_LIMIT, DunningAction.BLOCK_TOKENS) and (
        account.fleet_id is None and account.token_id is None
    ):  # a party's account (B2B): no tokens of its own to hold
        return {"hold": None, "skipped": "the account has no fleet or token to hold"}
    if action is DunningAction.LOWER_LIMIT:
        assert step.limit is not None
        hold = await place_hold(
            db_session, account, document, LOWER_LIMIT, step.rule, step.limit.amount, step.limit.currency
        )
        return {"hold": hold.id, "limit": str(step.limit.amount), "currency": step.limit.currency}
    if action is DunningAction.BLOCK_TOKENS:
        hold = await place_hold(db_session, account, document, BLOCK, step.rule)
        return {"hold": hold.id}
    if action is DunningAction.FEE:
        assert step.fee is not None
        charge = BillingCharge(
            account_id=account.id,
            description=f"Dunning fee ({step.rule}), invoice {document.number}",
            amount=step.fee.amount,
            currency=step.fee.currency,
            vat_rate=fee_vat_rate(issuer.dunning, step.rule),
            charged_on=today,
            source_key=stored_key(issuer.key, step.key),
        )
        db_session.add(charge)
        await db_session.flush()
        return {"charge": charge.id, "fee": str(step.fee.amount), "currency": step.fee.currency}
    if action is DunningAction.RELEASE:
        return {"released": await release_holds(db_session, document.id), "by": "job"}
    raise DunningError(f"no effect for {action}")  # pragma: no cover - every action is handled above


async def _do(
    db: Database,
    step: DunningStep,
    document: BillingDocument,
    account: BillingAccount,
    issuer: BillingIssuer,
    balance: Balance,
    today: date,
    collect: Collect | None,
) -> bool:
    """Do one step and record it, in one transaction; False when it was done already."""
    if step.action is DunningAction.RETRY_PAYMENT:
        return await _retry(db, issuer, document, step, collect)
    async with db.session() as db_session:
        # under the invoice's lock (as release_if_settled takes it), again: a payment committed since the
        # standing was read must not be met by a new block that nothing would release until the next run
        await lock_document(db_session, document.id)
        balance = await balance_of(db_session, document)
        if (balance.outstanding > 0) == (step.action is DunningAction.RELEASE):
            return False
        row = await claim(db_session, issuer, document, step, {})
        if row is None:
            return False
        row.detail = await _effect(db_session, step, document, account, issuer, balance, today)
    return True


def party_schedule(schedule: DunningSchedule) -> DunningSchedule:
    """The part of an issuer's schedule that applies to a party's (B2B) invoices: its reminders only."""
    return DunningSchedule(
        schedule.issuer, tuple(r for r in schedule.rules if r.action is DunningAction.REMINDER)
    )


OPEN_MARGIN = 0.005
"""Below any amount an invoice carries (EN 16931: at most 2 decimals), above any float error of an SQL sum:
SQLite adds the exact text amounts as floats, so SQL only pre-selects and the exact balance decides."""


def open_invoices(horizon: date, issuer_key: str | None = None) -> Select:
    """The invoices (with their account and issuer) dunning may have a step for by ``horizon``: due by then,
    and with something outstanding (amount due - credit notes - payments + refunds, in SQL) or a hold still
    active (its release). Ordered by id; the caller pages with ``BillingDocument.id > after``."""
    note = aliased(BillingDocument)

    def paid(kind: str) -> Any:
        return func.coalesce(
            select(func.sum(BillingPayment.amount))
            .where(
                BillingPayment.document_id == BillingDocument.id,
                BillingPayment.kind == kind,
                BillingPayment.status == SUCCEEDED,
            )
            .scalar_subquery(),
            0,
        )

    credited = func.coalesce(
        select(func.sum(note.payable))
        .where(note.credits_document_id == BillingDocument.id)
        .scalar_subquery(),
        0,
    )
    outstanding = type_coerce(BillingDocument.payable - credited - paid(PAYMENT) + paid(REFUND), Float)
    held = (
        select(BillingHold.id)
        .where(BillingHold.document_id == BillingDocument.id, BillingHold.released_at.is_(None))
        .exists()
    )
    query = (
        select(BillingDocument, BillingAccount, BillingIssuer)
        .join(BillingAccount, BillingAccount.id == BillingDocument.account_id)
        .join(BillingIssuer, BillingIssuer.id == BillingDocument.issuer_id)
        .where(
            and_(
                BillingDocument.kind == INVOICE,
                BillingDocument.due_date.is_not(None),
                BillingDocument.due_date <= horizon,
                or_(outstanding > OPEN_MARGIN, held),
            )
        )
        .order_by(BillingDocument.id)
    )
    if issuer_key is not None:
        query = query.where(BillingIssuer.key == issuer_key)
    return query


def _today(account: BillingAccount, today: date | None, now: datetime) -> date:
    if today is not None:
        return today
    try:
        return to_local(now, account.timezone or "UTC").date()
    except ValueError:
        return to_local(now, "UTC").date()


async def run_dunning(
    db: Database,
    *,
    today: date | None = None,
    issuer_key: str | None = None,
    collect: Collect | None = None,
) -> int:
    """Do every dunning step due (on ``today``, else each account's local date now); the number done.
    ``collect(db, document_id, attempt)`` makes a payment retry (None: the retry is recorded as
    ``unavailable``)."""
    now = utcnow()
    # the latest "today" of any account: its local date is at most one day ahead of UTC's
    horizon = today if today is not None else now.date() + timedelta(days=1)
    done_count = 0
    after = 0
    schedules: dict[tuple[int, str, bool], DunningSchedule | None] = {}
    while True:
        async with db.session() as db_session:
            query = open_invoices(horizon, issuer_key).where(BillingDocument.id > after).limit(CHUNK)
            rows = (await db_session.execute(query)).all()
            if not rows:
                return done_count
            after = rows[-1][0].id
            documents = [r[0] for r in rows]
            figures = await balances(db_session, documents)
            done = await _done_keys(db_session, [(d.id, i.key) for d, _, i in rows])
        for document, account, issuer in rows:
            party = account.kind == PARTY
            cache = (issuer.id, document.currency, party)
            if cache not in schedules:
                try:
                    full = schedule_of(issuer, document.currency)
                    schedules[cache] = party_schedule(full) if party else full
                except DunningError as exc:
                    log.error("issuer %s: its dunning schedule is not valid: %s", issuer.key, exc)
                    schedules[cache] = None
            schedule = schedules[cache]
            if schedule is None:
                continue
            day = _today(account, today, now)
            try:
                steps = next_steps(
                    figures[document.id].standing(), schedule, day, done.get(document.id, set())
                )
            except DunningError as exc:
                log.error("invoice %s: %s", document.number, exc)
                continue
            for step in steps:
                try:
                    if await _do(db, step, document, account, issuer, figures[document.id], day, collect):
                        done_count += 1
                except Exception:
                    log.exception("dunning step %s failed; the next run tries again", step.key)


async def _done_keys(db_session: AsyncSession, documents: Sequence[tuple[int, str]]) -> dict[int, set[str]]:
    """The core's keys of the steps done, per document (``documents``: id and issuer key)."""
    prefixes = {document_id: stored_key(issuer_key, "") for document_id, issuer_key in documents}
    rows = await db_session.execute(
        select(BillingDunningStep.document_id, BillingDunningStep.key).where(
            BillingDunningStep.document_id.in_(list(prefixes))
        )
    )
    out: dict[int, set[str]] = {}
    for document_id, key in rows:
        out.setdefault(document_id, set()).add(key.removeprefix(prefixes[document_id]))
    return out


@dataclass(frozen=True, slots=True)
class StepView:
    """A dunning step done: its key, rule, action, the day it was due, when it was done and what it did."""

    invoice: str
    key: str
    rule: str
    action: str
    due_on: date
    done_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountDunning:
    """One account's dunning status: what it owes, how much is overdue, its state and its last step."""

    account_id: int
    issuer: str
    kind: str
    buyer: str
    currency: str
    outstanding: Decimal
    overdue: Decimal
    state: str  # ok, overdue, limited, blocked
    held_for: tuple[str, ...]
    last_step: StepView | None


def dunning_state(actions: set[str], overdue: Decimal) -> str:
    """An account's dunning state: ``blocked`` with an active block, ``limited`` with an active lowered
    limit, ``overdue`` with something unpaid after its due date, else ``ok``."""
    if BLOCK in actions:
        return "blocked"
    if LOWER_LIMIT in actions:
        return "limited"
    return "overdue" if overdue > 0 else "ok"


def _view(row: BillingDunningStep, number: str) -> StepView:
    return StepView(number, row.key, row.rule, row.action, row.due_on, row.done_at, dict(row.detail or {}))


async def invoice_steps(db_session: AsyncSession, document: BillingDocument) -> list[StepView]:
    """The dunning steps done for ``document``, in the order they were done."""
    rows = await db_session.scalars(
        select(BillingDunningStep)
        .where(BillingDunningStep.document_id == document.id)
        .order_by(BillingDunningStep.done_at, BillingDunningStep.id)
    )
    return [_view(row, document.number) for row in rows]


async def account_statuses(
    db_session: AsyncSession,
    *,
    issuer_key: str | None = None,
    party_id: int | None = None,
    account_ids: Sequence[int] | None = None,
    today: date | None = None,
) -> list[AccountDunning]:
    """Every account's dunning status (of ``issuer_key``; with ``party_id``, only the accounts that party
    issues to or is billed as; with ``account_ids``, only those), by account id. Queries: accounts, invoices,
    three for balances, holds, steps."""
    query = select(BillingAccount, BillingIssuer.key).join(
        BillingIssuer, BillingIssuer.id == BillingAccount.issuer_id
    )
    if account_ids is not None:
        query = query.where(BillingAccount.id.in_(list(account_ids)))
    if issuer_key is not None:
        query = query.where(BillingIssuer.key == issuer_key)
    if party_id is not None:
        query = query.where(or_(BillingIssuer.party_id == party_id, BillingAccount.party_id == party_id))
    accounts = (await db_session.execute(query.order_by(BillingAccount.id))).all()
    ids = [a.id for a, _ in accounts]
    if not ids:
        return []
    documents = (
        await db_session.scalars(
            select(BillingDocument).where(
                BillingDocument.account_id.in_(ids), BillingDocument.kind == INVOICE
            )
        )
    ).all()
    figures = await balances(db_session, documents)
    holds = (
        await db_session.execute(
            select(BillingHold.account_id, BillingHold.action, BillingDocument.number)
            .join(BillingDocument, BillingDocument.id == BillingHold.document_id)
            .where(BillingHold.account_id.in_(ids), BillingHold.released_at.is_(None))
            .order_by(BillingHold.id)
        )
    ).all()
    steps = (
        await db_session.execute(
            select(BillingDunningStep, BillingDocument.number, BillingDocument.account_id)
            .join(BillingDocument, BillingDocument.id == BillingDunningStep.document_id)
            .where(BillingDocument.account_id.in_(ids))
            .order_by(BillingDunningStep.done_at, BillingDunningStep.id)
        )
    ).all()
    last: dict[int, StepView] = {}
    for row, number, account_id in steps:
        if account_id is not None:
            last[account_id] = _view(row, number)
    out = []
    now = utcnow()
    for account, key in accounts:
        day = _today(account, today, now)
        mine = [figures[d.id] for d in documents if d.account_id == account.id]
        outstanding = sum((b.outstanding for b in mine if b.outstanding > 0), ZERO)
        overdue = sum(
            (b.outstanding for b in mine if b.outstanding > 0 and b.due_date and day > b.due_date), ZERO
        )
        actions = {action for account_id, action, _ in holds if account_id == account.id}
        held_for = tuple(dict.fromkeys(number for account_id, _, number in holds if account_id == account.id))
        state = dunning_state(actions, overdue)
        out.append(
            AccountDunning(
                account.id,
                key,
                account.kind,
                str(account.buyer.get("legal_name", "")),
                account.currency,
                outstanding,
                overdue,
                state,
                held_for,
                last.get(account.id),
            )
        )
    return out


async def invoice_by_number(
    db_session: AsyncSession, number: str, issuer_key: str | None = None
) -> BillingDocument:
    """The invoice numbered ``number`` (of ``issuer_key``); ValueError when there is none, or several."""
    query = select(BillingDocument).where(BillingDocument.number == number, BillingDocument.kind == INVOICE)
    if issuer_key is not None:
        query = query.join(BillingIssuer, BillingIssuer.id == BillingDocument.issuer_id).where(
            BillingIssuer.key == issuer_key
        )
    rows = list((await db_session.scalars(query)).all())
    if not rows:
        raise ValueError(f"no invoice {number}" + (f" of issuer {issuer_key}" if issuer_key else ""))
    if len(rows) > 1:
        raise ValueError(f"invoice number {number} is used by several issuers: give the issuer")
    return rows[0]
