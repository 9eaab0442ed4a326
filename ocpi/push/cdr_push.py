"""Pushes of CDRs: POST the CDR to the eMSP that issued its token, exactly once (a dedupe key per CDR and
partner). Only the hub's own CDRs (its hosted CPOs'): a CDR an external CPO posted to the hub as the eMSP of the
token (``cdrs.received``, :mod:`ocpi.received_cdrs`) is that CPO's, already with its eMSP, and never pushed on."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import Cdr, Party
from ocpi.push.outbox_message import queue_push
from ocpi.push.recipients import token_emsp
from ocpi.render_objects import cdr_object


async def enqueue_cdr(cdr: Cdr | int, db_session: AsyncSession) -> int:
    """POST the CDR to its eMSP, once (a second call for the same CDR queues nothing); a received CDR: nothing."""
    row = await db_session.get(Cdr, cdr if isinstance(cdr, int) else cdr.id)
    if row is None or row.received:
        return 0
    found = await token_emsp(db_session, row.emsp_id)
    if found is None or not found[0].endpoint("cdrs"):
        return 0
    partner, role = found
    cpo = await db_session.get(Party, row.cpo_id)
    if cpo is None:
        return 0
    queued = await queue_push(
        db_session,
        partner,
        role,
        cpo,
        module="cdrs",
        method="POST",
        path="",
        body=cdr_object(row),
        key=row.cdr_uid,
        dedupe_key=f"ocpi:{partner.id}:cdr:{row.id}",
    )
    return int(queued)
