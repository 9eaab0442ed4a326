"""The charger event log (``charger_events``): notifications a charger sends, recorded durably and once."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from cpo_gateway.idempotent_insert import insert_ignoring_duplicates
from kernel.jsonutil import dumps_compact, to_jsonable
from kernel.models import ChargerEvent
from kernel.timeutil import parse_datetime, utcnow

if TYPE_CHECKING:
    from cpo_gateway.connection import ChargerConnection


async def log_event(conn: ChargerConnection, action: str, payload: dict[str, Any], when: Any = None) -> None:
    """Durably record a charger notification (idempotent on action + payload); ``when`` is the charger's
    timestamp for it, kept when it is an RFC 3339 date-time."""
    db = conn.gw.db
    key = hashlib.sha256((action + dumps_compact(payload)).encode()).hexdigest()
    stamp = None
    if isinstance(when, str):
        try:
            stamp = parse_datetime(when)
        except ValueError:
            stamp = None
    async with db.session() as db_session:
        await db_session.execute(
            insert_ignoring_duplicates(db, ChargerEvent).values(
                charge_point_id=conn.ref.id,
                action=action,
                timestamp=stamp,
                received_at=utcnow(),
                dedup_key=key,
                payload=to_jsonable(payload),
            )
        )
