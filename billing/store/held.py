"""What an issuer without a registration id holds, remembered: its warning is logged when the held set grows.

Issuing holds a CDR with a line outside the scope of VAT, and a fee without a VAT rate, for an issuer that has
no registration id (:func:`billing.core.vat.outside_vat_held`; :mod:`.issuing`, :mod:`.monthly`), and every
hourly run meets the same items again until the id is set. :func:`newly_held` records each item in
``billing_held_outside_vat`` (issuer, ``cdr:<cdr_uid>`` / ``fee:<charge id>``) in the caller's transaction and
returns those not recorded before, so the caller warns about the new ones only: once per item, whatever the
number of runs, processes or restarts (two concurrent transactions holding the same new item: the insert that
waits for the other finds it and returns nothing). :func:`forget_held` drops an issuer's rows when its
registration id is set (nothing is held any more). The items stay listed where unbilled items are, the
reconciliation report (:mod:`.reports`, from the CDRs and fees themselves, not from these rows).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import BillingHeldOutsideVat
from kernel.timeutil import utcnow


def cdr_item(cdr_uid: str) -> str:
    return f"cdr:{cdr_uid}"


def fee_item(charge_id: int) -> str:
    return f"fee:{charge_id}"


async def newly_held(db_session: AsyncSession, issuer_id: int, items: Sequence[str]) -> list[str]:
    """Record ``items`` as held for issuer ``issuer_id``; those not held before, in the order given."""
    if not items:
        return []
    known = set(
        (
            await db_session.scalars(
                select(BillingHeldOutsideVat.item).where(
                    BillingHeldOutsideVat.issuer_id == issuer_id, BillingHeldOutsideVat.item.in_(list(items))
                )
            )
        ).all()
    )
    new = list(dict.fromkeys(i for i in items if i not in known))
    if not new:
        return []
    bind = db_session.bind
    insert = postgresql.insert if bind is not None and bind.dialect.name == "postgresql" else sqlite.insert
    now = utcnow()
    inserted = await db_session.scalars(
        insert(BillingHeldOutsideVat)
        .values([{"issuer_id": issuer_id, "item": item, "held_at": now} for item in new])
        .on_conflict_do_nothing(index_elements=["issuer_id", "item"])
        .returning(BillingHeldOutsideVat.item)
    )
    mine = set(inserted.all())
    return [i for i in new if i in mine]


async def forget_held(db_session: AsyncSession, issuer_id: int) -> None:
    """Issuer ``issuer_id`` has its registration id: nothing of it is held any more."""
    await db_session.execute(
        delete(BillingHeldOutsideVat).where(BillingHeldOutsideVat.issuer_id == issuer_id)
    )
