"""Meter values of a running transaction, the same for OCPP 1.6 and 2.0.1: the group-commit fast path.

A connection remembers its running transactions (``ChargerConnection.active_tx``: session pk, meter start,
newest register timestamp). Their samples go to the group-commit writer (:mod:`cpo_gateway.meter_writer`) without a transaction of
their own; a transaction the connection does not know takes the session store's full path, which finds (or refuses)
the session and, when it is running, puts it in the cache for the next frame.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from cpo_gateway.events import MeterValues, Sample
from cpo_gateway.meter_rules import sample_rows
from kernel.timeutil import utcnow

if TYPE_CHECKING:
    from cpo_gateway.connection import ChargerConnection

RUNNING_ENERGY_EVERY = timedelta(minutes=5)
"""How often (in charger time) the running energy on the session row is refreshed while it charges."""


async def store_meter_values(
    conn: ChargerConnection, tx: str, evse_id: int | None, smp: tuple[Sample, ...]
) -> None:
    """Fast path for a known running transaction (group commit); the full path otherwise."""
    cached = conn.active_tx.get(tx)
    if cached is None:
        session = await conn.gw.sessions.meter_values(conn.ref, MeterValues(tx, evse_id, smp))
        if session is not None and session.end_time is None:
            conn.active_tx[tx] = [session.id, session.meter_start_wh, None]
        return
    session_id, meter_start, newest = cached
    updates = []
    if meter_start is not None:
        best = None
        for s in smp:
            wh = s.energy_wh
            if wh is not None and (newest is None or s.timestamp > newest) and wh >= meter_start:
                best = s
                newest = s.timestamp
        # the running energy on the session is refreshed at most every RUNNING_ENERGY_EVERY of charger time
        # (every sample is in meter_values; the final energy is computed from them at the end)
        if best is not None and (cached[2] is None or best.timestamp - cached[2] >= RUNNING_ENERGY_EVERY):
            cached[2] = best.timestamp
            updates = [{"sid": session_id, "energy": best.energy_wh - meter_start, "now": utcnow()}]
    await conn.gw.meter_writer.write(sample_rows(session_id, smp), updates)
