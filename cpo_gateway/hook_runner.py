"""Running the hub's hooks (:class:`kernel.seams.Hooks`) inside the gateway's transaction, each in a savepoint.

A failing hook is logged and left to its own safety net (OCPI's scanner); the charger's data is kept and the
charger is answered as if the hook had not been there. The caller's pending writes are flushed *before* the
first savepoint, outside it: a savepoint holds only its hook's writes, so a failure of the caller's own data
(a unique key, say) is raised to the caller, never swallowed as a failed hook.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

T = TypeVar("T")


async def run_hooks(
    db_session: AsyncSession,
    name: str,
    hooks: Sequence[Callable[[AsyncSession, T], Awaitable[Any]]],
    obj: T,
) -> None:
    """Run ``hooks`` (``hub.hooks.session`` or ``.evse_status``, e.g. OCPI pushes) on ``obj`` in ``db_session``'s
    transaction, in list order, each in a savepoint; ``name`` is the seam, for the log. Raises when the
    caller's own pending writes cannot be flushed."""
    if not hooks:
        return
    await db_session.flush()  # the caller's state: its errors are the caller's, not a hook's
    for hook in hooks:
        try:
            async with db_session.begin_nested():
                await hook(db_session, obj)
        except Exception:
            log.exception("hook failed", extra={"fields": {"hook": name}})
