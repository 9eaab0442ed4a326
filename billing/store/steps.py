"""The record of dunning steps done (``billing_dunning_steps``): a step is claimed by inserting its row, whose key
is UNIQUE, in the transaction that makes its effect, so it is done once by whichever run gets there first.

A step's stored key is the core's ``invoice:rule:occurrence`` under its issuer, ``issuer/invoice:rule:occurrence``
(two issuers may number their invoices alike); it is also the reminder's outbox dedupe key and a fee's source key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.dunning import DunningAction, DunningStep, step_key
from kernel.models import BillingDocument, BillingDunningStep, BillingIssuer
from kernel.timeutil import utcnow


def stored_key(issuer_key: str, key: str) -> str:
    """The stored key of the core's step ``key`` of an invoice of ``issuer_key``."""
    return f"{issuer_key}/{key}"


async def claim(
    db_session: AsyncSession,
    issuer: BillingIssuer,
    document: BillingDocument,
    step: DunningStep,
    detail: dict[str, Any],
) -> BillingDunningStep | None:
    """Insert the step's row (in a savepoint); None when it is done already (by this or another run: on
    PostgreSQL a concurrent insert of the same key waits for the other transaction, then fails here)."""
    row = BillingDunningStep(
        document_id=document.id,
        key=stored_key(issuer.key, step.key),
        rule=step.rule,
        action=step.action.value,
        due_on=step.scheduled,
        done_at=utcnow(),
        detail=detail,
    )
    try:
        async with db_session.begin_nested():
            db_session.add(row)
            await db_session.flush()
    except IntegrityError:
        return None
    return row


async def record_release(db_session: AsyncSession, document: BillingDocument, released: int) -> None:
    """Record the ``release`` step of ``document`` (once) after its holds were released on payment."""
    step = DunningStep(
        step_key(document.number, "release", 1),
        document.number,
        "release",
        DunningAction.RELEASE,
        1,
        utcnow().date(),
    )
    issuer = await db_session.get(BillingIssuer, document.issuer_id)
    assert issuer is not None
    await claim(db_session, issuer, document, step, {"released": released, "by": "payment"})
