"""What each partner was last sent of an object (``ocpi_push_state``): a location's ``last_updated`` stamp (or
:data:`HIDDEN`), an EVSE's status, a session's stamp and how many charging periods went out."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import EVSE
from kernel.models.roaming import OcpiPushState

HIDDEN = "hidden"  # push state of a location the partner had but may no longer see


async def find_state(db_session: AsyncSession, partner_id: int, kind: str, key: str) -> OcpiPushState | None:
    """The push state of object ``key`` of ``kind`` (``location``, ``evse``, ``session``) for the partner."""
    return await db_session.scalar(
        select(OcpiPushState).where(
            OcpiPushState.partner_id == partner_id,
            OcpiPushState.kind == kind,
            OcpiPushState.object_key == key,
        )
    )


async def new_state(
    db_session: AsyncSession,
    *,
    partner_id: int,
    kind: str,
    object_key: str,
    last_status: str | None,
    periods_sent: int = 0,
) -> OcpiPushState | None:
    """Insert a push state; None when a concurrent transaction created it first."""
    state = OcpiPushState(
        partner_id=partner_id,
        kind=kind,
        object_key=object_key,
        last_status=last_status,
        periods_sent=periods_sent,
    )
    try:
        async with db_session.begin_nested():
            db_session.add(state)
            await db_session.flush()
    except IntegrityError:
        return None
    return state


async def remember_evse(db_session: AsyncSession, partner_id: int, evse: EVSE) -> None:
    """Record the EVSE status the partner now has."""
    state = await find_state(db_session, partner_id, "evse", str(evse.id))
    if state is None:
        await new_state(
            db_session, partner_id=partner_id, kind="evse", object_key=str(evse.id), last_status=evse.status
        )
    else:
        state.last_status = evse.status
