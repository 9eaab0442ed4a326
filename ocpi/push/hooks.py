"""The push hooks :class:`~ocpi.component.OcpiComponent` appends to ``hub.hooks`` (``async hook(db_session,
obj)``, run by their producers inside their transactions): each queues the push of its object in a savepoint,
so a failure never loses the caller's change (the push scanner retries)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import EVSE, Cdr, ChargingSession, TariffVersion
from ocpi.push.cdr_push import enqueue_cdr
from ocpi.push.location_push import enqueue_evse_status
from ocpi.push.session_push import enqueue_session_update
from ocpi.push.tariff_push import enqueue_tariff

log = logging.getLogger(__name__)


async def _guarded(what: str, db_session: AsyncSession, call: Awaitable[int]) -> None:
    """Run an enqueue in a savepoint: a failure must never lose the caller's change (the scanner retries)."""
    try:
        async with db_session.begin_nested():
            await call
    except Exception:
        log.exception("could not queue the OCPI push of %s; the push scanner will retry", what)


async def cdr_hook(db_session: AsyncSession, cdr: Cdr) -> None:
    """For ``hub.hooks.cdr`` (pricing runs them in the CDR's transaction)."""
    await _guarded(f"CDR {cdr.cdr_uid}", db_session, enqueue_cdr(cdr, db_session))


async def tariff_hook(db_session: AsyncSession, tariff: TariffVersion) -> None:
    """For ``hub.hooks.tariff`` (every new tariff version, imported or dynamic, in its transaction)."""
    await _guarded(
        f"tariff {tariff.tariff_id} v{tariff.version}", db_session, enqueue_tariff(tariff, db_session)
    )


async def session_hook(db_session: AsyncSession, session: ChargingSession) -> None:
    """For ``hub.hooks.session`` (the gateway, when a session starts, gets meter values, ends)."""
    await _guarded(f"session {session.session_uid}", db_session, enqueue_session_update(session, db_session))


async def evse_status_hook(db_session: AsyncSession, evse: EVSE) -> None:
    """For ``hub.hooks.evse_status`` (the gateway, after it changed ``evses.status``)."""
    await _guarded(f"EVSE {evse.uid}", db_session, enqueue_evse_status(evse, db_session))
