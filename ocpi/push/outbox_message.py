"""One push as a row of the ``ocpi`` outbox channel: the method, the path under the partner's Receiver
endpoint of ``module``, the body and the routing headers; the ordering key (per partner, module and object)
makes the messages of one object arrive in order, the optional dedupe key makes a push happen once.

**Priority** (:class:`kernel.models.OutboxPriority`): state pushes (locations, EVSE statuses, tariffs, sessions)
are ``BULK``, records (CDRs, token states) ``NORMAL``; command results are queued ``URGENT`` by
:mod:`ocpi.command_runner`. So in a partner's lane a command result, and in the dispatcher's claim a receipt,
never waits behind a backlog of pushes.

**Coalescing** (OCPI 2.2.1, transport_and_format "PATCH": fields left out "remain unchanged"; Sessions PATCH:
"SHALL contain the ``last_updated`` field", its ``charging_periods`` are "added" to the existing ones; a PUT
replaces the whole object). Only among the messages of one ordering key (one partner, one object) that no attempt
ever leased (:func:`kernel.outbox.unsent_tail`):

* a PATCH of the same path as the newest such message, itself a PATCH, is merged into it
  (:func:`merge_patch`: the later values win, ``last_updated`` the later one, a session's charging periods
  concatenated in order), so three kWh updates queued for a busy partner are one PATCH with the last values;
* a PATCH whose path has an unsent PATCH further back (behind another EVSE's PATCH of the same location) closes
  that one (``superseded``) and is queued merged at the end, so the EVSEs' PATCHes keep their order;
* never across an unsent PUT: a PATCH queued behind one waits behind it (the PUT is never changed);
* a PUT of a location or session closes every unsent PUT and PATCH before it of that object (``superseded``:
  the PUT carries the whole current state, EVSE statuses and every charging period included);
* CDR POSTs (each CDR once, its own key and dedupe key), tariff PUTs/DELETEs, token PUTs and command results are
  never merged nor closed here; a message with a dedupe key neither.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import OutboxPriority, Party
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole
from kernel.outbox import coalesce, enqueue, supersede, unsent_tail
from ocpi.routing import routing_headers

CHANNEL = "ocpi"

PRIORITY_BY_MODULE: dict[str, OutboxPriority] = {
    "locations": OutboxPriority.BULK,
    "tariffs": OutboxPriority.BULK,
    "sessions": OutboxPriority.BULK,
    "cdrs": OutboxPriority.NORMAL,
    "tokens": OutboxPriority.NORMAL,
}
"""The outbox priority of a push by module (another module, e.g. a command result: ``URGENT``)."""

MERGED_MODULES = ("locations", "sessions")
"""The modules whose PATCHes are coalesced and whose PUT supersedes the unsent messages of its object."""


def merge_patch(module: str, earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """One PATCH body equal to applying ``earlier`` then ``later`` (OCPI 2.2.1 PATCH semantics): the later
    values win (``last_updated`` included); a Session's ``charging_periods`` are appended by the receiver, so
    the merged PATCH carries both lists, in order."""
    merged = {**earlier, **later}
    if module == "sessions":
        periods = [*(earlier.get("charging_periods") or []), *(later.get("charging_periods") or [])]
        if periods:
            merged["charging_periods"] = periods
    return merged


async def queue_push(
    db_session: AsyncSession,
    partner: OcpiPartner,
    role: OcpiPartnerRole,
    cpo: Party,
    *,
    module: str,
    method: str,
    path: str,
    body: Any,
    key: str,
    dedupe_key: str | None = None,
) -> bool:
    """Add the message to ``db_session`` (or merge it into an unsent one of its object, see the module's
    docstring); True when the push is queued (its own row or merged), False when ``dedupe_key`` was used
    already (nothing added)."""
    payload = {
        "method": method,
        "module": module,
        "path": path,
        "body": body,
        "headers": routing_headers(cpo.country_code, cpo.party_id, role.country_code, role.party_id),
    }
    ordering_key = f"ocpi:{partner.id}:{module}:{key}"
    merging = module in MERGED_MODULES and dedupe_key is None
    queued, close = payload, None
    if merging and method == "PATCH" and isinstance(body, dict):
        plan = await _merge_plan(db_session, ordering_key, payload)
        if plan is None:
            return True  # merged into the newest unsent message of the object
        queued, close = plan
    priority = PRIORITY_BY_MODULE.get(module, OutboxPriority.URGENT)
    msg = await enqueue(
        db_session, CHANNEL, str(partner.id), ordering_key, queued, dedupe_key, priority=priority
    )
    if msg is None:
        return False
    named = f"outbox {msg.id} ({method} {module}{path})"
    if close is not None and not await supersede(db_session, [close], named, unsent_only=True):
        # the earlier PATCH was leased meanwhile: it goes, so this one carries only its own values
        msg.payload = payload
        await db_session.flush()
    if merging and method == "PUT":
        earlier = [m.id for m in await unsent_tail(db_session, CHANNEL, ordering_key) if m.id < msg.id]
        await supersede(db_session, earlier, named, unsent_only=True)
    return True


async def _merge_plan(
    db_session: AsyncSession, ordering_key: str, payload: dict[str, Any]
) -> tuple[dict[str, Any], int | None] | None:
    """Where a PATCH goes among the unsent messages of its key: None when it was merged into the newest one (a
    PATCH of its path); else the payload to queue and the unsent PATCH of its path further back that the queued
    one replaces (closed once queued), or the PATCH unchanged and None (no PATCH of its path before an unsent
    PUT or a leased row)."""
    module, path = payload["module"], payload["path"]
    for position, queued in enumerate(await unsent_tail(db_session, CHANNEL, ordering_key)):
        earlier = queued.payload or {}
        if earlier.get("method") != "PATCH" or not isinstance(earlier.get("body"), dict):
            break  # an unsent PUT (or anything else): never merged across
        if earlier.get("path") != path:
            continue  # another object under the same key (another EVSE of the location)
        merged = {**payload, "body": merge_patch(module, earlier["body"], payload["body"])}
        if position == 0:
            if await coalesce(db_session, queued, merged):
                return None
            break  # leased meanwhile: this one is queued on its own
        return merged, queued.id
    return payload, None
