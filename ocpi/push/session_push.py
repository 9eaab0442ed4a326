"""Pushes of Sessions to the eMSP that issued the session's token: PUT the whole Session the first time, then
PATCH the new values with only the charging periods not sent yet (the receiver appends them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import ChargingSession, Party, Token
from ocpi.push.outbox_message import queue_push
from ocpi.push.push_state import find_state, new_state
from ocpi.push.recipients import token_emsp
from ocpi.render_objects import session_object

PATCHED_WHEN_PRESENT = ("end_date_time", "total_cost", "authorization_reference", "meter_id")


async def enqueue_session_update(session: ChargingSession | int, db_session: AsyncSession) -> int:
    """PUT (first push) or PATCH (later pushes) the Session to the eMSP that issued its token."""
    cs = await db_session.get(ChargingSession, session if isinstance(session, int) else session.id)
    if cs is None or cs.token_id is None or cs.charge_point_id is None:
        return 0  # no charger: an external CPO's session, known from the CDR it posted (not ours to push)
    await db_session.flush()
    token = await db_session.get(Token, cs.token_id)
    found = await token_emsp(db_session, token.emsp_id if token else None)
    if found is None or not found[0].endpoint("sessions"):
        return 0
    partner, role = found
    cpo = await db_session.get(Party, cs.cpo_id)
    if cpo is None:
        return 0
    obj = await session_object(db_session, cs, cpo)
    periods = obj.get("charging_periods") or []
    stamp = obj["last_updated"]
    path = f"/{cpo.country_code}/{cpo.party_id}/{cs.session_uid}"
    state = await find_state(db_session, partner.id, "session", cs.session_uid)
    if state is None:
        state = await new_state(
            db_session,
            partner_id=partner.id,
            kind="session",
            object_key=cs.session_uid,
            periods_sent=len(periods),
            last_status=stamp,
        )
        if state is None:
            return 0
        return int(
            await queue_push(
                db_session,
                partner,
                role,
                cpo,
                module="sessions",
                method="PUT",
                path=path,
                body=obj,
                key=cs.session_uid,
            )
        )
    if state.last_status == stamp and state.periods_sent == len(periods):
        return 0
    patch: dict[str, Any] = {
        "kwh": obj["kwh"],
        "status": obj["status"],
        "last_updated": stamp,
    }
    for field in PATCHED_WHEN_PRESENT:
        if field in obj:
            patch[field] = obj[field]
    if len(periods) > state.periods_sent:
        patch["charging_periods"] = periods[state.periods_sent :]
    state.periods_sent = max(state.periods_sent, len(periods))
    state.last_status = stamp
    return int(
        await queue_push(
            db_session,
            partner,
            role,
            cpo,
            module="sessions",
            method="PATCH",
            path=path,
            body=patch,
            key=cs.session_uid,
        )
    )
