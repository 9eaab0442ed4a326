"""Holds: a block or a lowered monthly spending limit on an account's tokens while one of its invoices is unpaid.

A hold is a ``billing_holds`` row for a document: on the account's fleet (``fleet_id``: every token of the fleet)
or, for a driver account, on its token (``token_id``); active while ``released_at`` is NULL. The gateway's
authorizer (:mod:`cpo_gateway.authorization`) reads the active ones on every Authorize / StartTransaction, in
every ``evhub serve`` process, so placing or releasing one here is enforced at the next authorization anywhere.

:func:`place_hold` is called by the dunning job in the step's transaction; :func:`release_if_settled` by the
payments (a webhook, a bank transfer) and by a credit note, in their transaction: once nothing is outstanding on
the invoice its holds are released, and the dunning ``release`` step is recorded (once).

Both run the ``hold`` hooks (:data:`kernel.seams.Hooks.hold`) the session carries, in the same transaction, for
each hold placed or released: OCPI queues there the token updates to the external CPOs (a block is ``valid:
false`` there), so a hold and its pushes commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.store.balances import balance
from billing.store.steps import record_release
from kernel.models import BillingAccount, BillingDocument, BillingHold
from kernel.seams import hooks_of
from kernel.timeutil import utcnow

BLOCK = "block"
LOWER_LIMIT = "lower_limit"


@dataclass(frozen=True, slots=True)
class HoldView:
    """An active or released hold, as the CLI and API show it."""

    invoice: str
    action: str
    rule: str
    limit: Decimal | None
    currency: str | None
    since: datetime
    released_at: datetime | None


async def place_hold(
    db_session: AsyncSession,
    account: BillingAccount,
    document: BillingDocument,
    action: str,
    rule: str,
    limit: Decimal | None = None,
    currency: str | None = None,
) -> BillingHold:
    """A ``block`` or ``lower_limit`` hold on the account's fleet (or its token), for ``document``."""
    if action not in (BLOCK, LOWER_LIMIT):
        raise ValueError(f"no such hold: {action}")
    if (action == LOWER_LIMIT) != (limit is not None):
        raise ValueError("a lowered limit, and only one, has a limit")
    if account.fleet_id is None and account.token_id is None:
        raise ValueError(f"account {account.id} has no fleet or token to hold")
    row = BillingHold(
        account_id=account.id,
        document_id=document.id,
        fleet_id=account.fleet_id,
        token_id=None if account.fleet_id is not None else account.token_id,
        action=action,
        limit=limit,
        currency=currency if limit is not None else None,
        rule=rule,
        since=utcnow(),
    )
    db_session.add(row)
    await db_session.flush()
    await _changed(db_session, [row])
    return row


async def release_holds(db_session: AsyncSession, document_id: int) -> int:
    """Release every active hold of ``document_id`` now; the number released."""
    rows = list(
        (
            await db_session.scalars(
                select(BillingHold)
                .where(BillingHold.document_id == document_id, BillingHold.released_at.is_(None))
                .order_by(BillingHold.id)
            )
        ).all()
    )
    now = utcnow()
    for row in rows:
        row.released_at = now
    await db_session.flush()
    await _changed(db_session, rows)
    return len(rows)


async def _changed(db_session: AsyncSession, rows: Sequence[BillingHold]) -> None:
    """The hold hooks, in the hold's transaction."""
    hooks = hooks_of(db_session)
    if hooks is None:
        return
    for row in rows:
        for hook in hooks.hold:
            await hook(db_session, row)


async def lock_document(db_session: AsyncSession, document_id: int) -> None:
    """Lock the invoice's row for the transaction (PostgreSQL; SQLite has one writer at a time anyway): the
    dunning job's steps and :func:`release_if_settled` take it before reading the balance, so a hold placed
    and a payment's release are never interleaved into a hold nobody releases."""
    await db_session.execute(
        select(BillingDocument.id).where(BillingDocument.id == document_id).with_for_update()
    )


async def release_if_settled(db_session: AsyncSession, document_id: int) -> int:
    """Release the holds of ``document_id`` once nothing is outstanding on it; the number released. The
    dunning ``release`` step is recorded with them (idempotent: a second call releases and records nothing)."""
    await lock_document(db_session, document_id)
    document = await db_session.get(BillingDocument, document_id)
    if document is None or document.due_date is None:
        return 0
    if (await balance(db_session, document)).outstanding > 0:
        return 0
    released = await release_holds(db_session, document_id)
    if released:
        await record_release(db_session, document, released)
    return released


async def holds_of(db_session: AsyncSession, document_ids: Sequence[int]) -> dict[int, list[HoldView]]:
    """The holds (active and released) of each document, oldest first, in one query."""
    if not document_ids:
        return {}
    rows = await db_session.execute(
        select(BillingHold, BillingDocument.number)
        .join(BillingDocument, BillingDocument.id == BillingHold.document_id)
        .where(BillingHold.document_id.in_(document_ids))
        .order_by(BillingHold.id)
    )
    out: dict[int, list[HoldView]] = {}
    for hold, number in rows:
        out.setdefault(hold.document_id, []).append(
            HoldView(number, hold.action, hold.rule, hold.limit, hold.currency, hold.since, hold.released_at)
        )
    return out
