"""Pushes to the partners' Receiver interfaces, always through the durable outbox (channel ``ocpi``).

Functions to call inside the business transaction (they only add outbox rows to ``db_session``):

* :func:`enqueue_location` — PUT the whole Location to every partner that may see it (``publish``, or for
  ``publish: false`` an eMSP owning a token of ``publish_allowed_to``, see :mod:`ocpi.visibility`);
* :func:`enqueue_evse_status` — PATCH an EVSE's status (and bumps the location's ``last_updated``);
* :func:`enqueue_session_update` — PUT the Session to its token's eMSP the first time, then PATCH with the
  new values and only the charging periods not sent yet (the receiver appends them);
* :func:`enqueue_cdr` — POST the CDR to its eMSP exactly once (dedupe key per CDR and partner);
* :func:`enqueue_tariff` — PUT a tariff version (every version, dynamic ones included) to every partner;
  :func:`enqueue_tariff_delete` — DELETE a tariff.

Each returns the number of messages queued. Messages of one object share an ordering key per partner, so they
arrive in order. :func:`scan` is the periodic safety net that queues whatever changed without a push
(new CDRs, tariff versions, session and EVSE changes) — other packages may rely on it alone.

:class:`OcpiSender` is the outbox channel sender: it resolves the partner's current endpoint at delivery time,
sends with the routing headers, and classifies the answer (retry on timeouts, 5xx and 3xxx; give up on 4xx).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import EVSE, Cdr, ChargingSession, Location, OutboxMessage, Party, TariffVersion, Token
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, OcpiPushState, PartnerStatus
from kernel.outbox import DeliveryResult, enqueue
from kernel.timeutil import format_rfc3339, utcnow
from ocpi import client
from ocpi.objects import (
    cdr_object,
    load_location,
    location_last_updated,
    location_object,
    session_object,
    tariff_object,
)
from ocpi.routing import routing_headers
from ocpi.visibility import location_view, shape

log = logging.getLogger(__name__)
CHANNEL = "ocpi"


async def _partners(db_session: AsyncSession) -> list[OcpiPartner]:
    return list(
        (
            await db_session.scalars(
                select(OcpiPartner)
                .where(OcpiPartner.status == PartnerStatus.REGISTERED)
                .order_by(OcpiPartner.id)
            )
        ).all()
    )


def _receiving_roles(partner: OcpiPartner) -> list[OcpiPartnerRole]:
    """The partner's roles that receive CPO data (eMSPs, hubs; others too when they expose a receiver)."""
    preferred = [r for r in partner.roles if r.role in ("EMSP", "HUB", "NSP", "NAP", "SCSP", "OTHER")]
    return preferred or list(partner.roles)


def _may_see(partner: OcpiPartner, cpo_id: int) -> bool:
    return partner.allowed_cpo_ids is None or cpo_id in partner.allowed_cpo_ids


def _party_pks(partner: OcpiPartner) -> list[int]:
    return [r.party_pk for r in partner.roles]


HIDDEN = "hidden"  # push state of a location the partner had but may no longer see


async def _queue(
    db_session: AsyncSession,
    partner: OcpiPartner,
    role: OcpiPartnerRole,
    cpo: Party,
    module: str,
    method: str,
    path: str,
    body: Any,
    key: str,
    dedupe_key: str | None = None,
) -> bool:
    payload = {
        "method": method,
        "module": module,
        "path": path,
        "body": body,
        "headers": routing_headers(cpo.country_code, cpo.party_id, role.country_code, role.party_id),
    }
    msg = await enqueue(
        db_session, CHANNEL, str(partner.id), f"ocpi:{partner.id}:{module}:{key}", payload, dedupe_key
    )
    return msg is not None


async def _state(db_session: AsyncSession, partner_id: int, kind: str, key: str) -> OcpiPushState | None:
    return await db_session.scalar(
        select(OcpiPushState).where(
            OcpiPushState.partner_id == partner_id,
            OcpiPushState.kind == kind,
            OcpiPushState.object_key == key,
        )
    )


async def _new_state(db_session: AsyncSession, **fields: Any) -> OcpiPushState | None:
    """Insert a push state; None when a concurrent transaction created it first."""
    state = OcpiPushState(**fields)
    try:
        async with db_session.begin_nested():
            db_session.add(state)
            await db_session.flush()
    except IntegrityError:
        return None
    return state


# ---------------------------------------------------------------------------------------------- locations


async def enqueue_location(
    location: Location | int, db_session: AsyncSession, *, partner_id: int | None = None
) -> int:
    """PUT the Location (with its EVSEs and live statuses) to every registered partner that may see it
    (or only to ``partner_id``)."""
    loc_pk = location if isinstance(location, int) else location.id
    await db_session.flush()
    loc = await load_location(db_session, loc_pk)
    if loc is None:
        return 0
    cpo = await db_session.get(Party, loc.cpo_id)
    if cpo is None:
        return 0
    body = location_object(loc, cpo)
    stamp = format_rfc3339(location_last_updated(loc))
    count = 0
    for partner in await _partners(db_session):
        if not _may_see(partner, loc.cpo_id) or not partner.endpoint("locations"):
            continue
        if partner_id is not None and partner.id != partner_id:
            continue
        visible, entries = await location_view(db_session, loc, _party_pks(partner))
        state = await _state(db_session, partner.id, "location", str(loc.id))
        if not visible and (state is None or state.last_status == HIDDEN):
            continue
        for role in _receiving_roles(partner)[:1]:
            path = f"/{cpo.country_code}/{cpo.party_id}/{loc.ocpi_id}"
            # a partner that had the location but may no longer see it gets it once more with
            # publish: false (so it stops showing it), then nothing until it may see it again
            mine = shape(body, entries if visible else [])
            count += await _queue(db_session, partner, role, cpo, "locations", "PUT", path, mine, f"{loc.id}")
            mark = stamp if visible else HIDDEN
            if state is None:
                await _new_state(
                    db_session,
                    partner_id=partner.id,
                    kind="location",
                    object_key=str(loc.id),
                    last_status=mark,
                )
            else:
                state.last_status = mark
            if visible:
                for evse in loc.evses:
                    await _remember_evse(db_session, partner.id, evse)
    return count


async def _remember_evse(db_session: AsyncSession, partner_id: int, evse: EVSE) -> None:
    state = await _state(db_session, partner_id, "evse", str(evse.id))
    if state is None:
        await _new_state(
            db_session, partner_id=partner_id, kind="evse", object_key=str(evse.id), last_status=evse.status
        )
    else:
        state.last_status = evse.status


async def enqueue_evse_status(evse: EVSE | int, db_session: AsyncSession, status: str | None = None) -> int:
    """PATCH the EVSE's status to every partner that may see its location. Sets ``evse.status`` when
    ``status`` is given, and bumps ``last_updated`` of the EVSE and its location."""
    evse_row = await db_session.get(EVSE, evse if isinstance(evse, int) else evse.id)
    if evse_row is None:
        return 0
    now = utcnow()
    if status is not None:
        evse_row.status = status
    evse_row.last_updated = now
    loc = await db_session.get(Location, evse_row.location_id)
    if loc is None:
        return 0
    loc.last_updated = now
    await db_session.flush()
    cpo = await db_session.get(Party, loc.cpo_id)
    if cpo is None:
        return 0
    body = {"status": evse_row.status, "last_updated": format_rfc3339(now)}
    count = 0
    for partner in await _partners(db_session):
        if not _may_see(partner, loc.cpo_id) or not partner.endpoint("locations"):
            continue
        visible, _entries = await location_view(db_session, loc, _party_pks(partner))
        loc_state = await _state(db_session, partner.id, "location", str(loc.id))
        if not visible or loc_state is None or loc_state.last_status == HIDDEN:
            # The partner has not received this location yet (a PATCH would be refused, 2003), or may no
            # longer see it: the whole location goes out instead (or nothing), in the same per-location order.
            count += await enqueue_location(loc.id, db_session, partner_id=partner.id)
            continue
        role = _receiving_roles(partner)[0]
        path = f"/{cpo.country_code}/{cpo.party_id}/{loc.ocpi_id}/{evse_row.uid}"
        count += await _queue(db_session, partner, role, cpo, "locations", "PATCH", path, body, f"{loc.id}")
        await _remember_evse(db_session, partner.id, evse_row)
        loc_state.last_status = format_rfc3339(now)
    return count


# ---------------------------------------------------------------------------------------------- sessions


async def _token_partner(db_session: AsyncSession, emsp_party_pk: int | None):
    if emsp_party_pk is None:
        return None, None
    role = await db_session.scalar(select(OcpiPartnerRole).where(OcpiPartnerRole.party_pk == emsp_party_pk))
    if role is None:
        return None, None
    partner = await db_session.get(OcpiPartner, role.partner_id)
    if partner is None or partner.status != PartnerStatus.REGISTERED:
        return None, None
    return partner, role


async def enqueue_session_update(session: ChargingSession | int, db_session: AsyncSession) -> int:
    """PUT (first push) or PATCH (later pushes) the Session to the eMSP that issued its token."""
    cs = await db_session.get(ChargingSession, session if isinstance(session, int) else session.id)
    if cs is None or cs.token_id is None:
        return 0
    await db_session.flush()
    token = await db_session.get(Token, cs.token_id)
    partner, role = await _token_partner(db_session, token.emsp_id if token else None)
    if partner is None or role is None or not partner.endpoint("sessions"):
        return 0
    cpo = await db_session.get(Party, cs.cpo_id)
    if cpo is None:
        return 0
    obj = await session_object(db_session, cs, cpo)
    periods = obj.get("charging_periods") or []
    stamp = obj["last_updated"]
    path = f"/{cpo.country_code}/{cpo.party_id}/{cs.session_uid}"
    state = await _state(db_session, partner.id, "session", cs.session_uid)
    if state is None:
        state = await _new_state(
            db_session,
            partner_id=partner.id,
            kind="session",
            object_key=cs.session_uid,
            periods_sent=len(periods),
            last_status=stamp,
        )
        if state is None:
            return 0
        return int(await _queue(db_session, partner, role, cpo, "sessions", "PUT", path, obj, cs.session_uid))
    if state.last_status == stamp and state.periods_sent == len(periods):
        return 0
    patch: dict[str, Any] = {
        "kwh": obj["kwh"],
        "status": obj["status"],
        "last_updated": stamp,
    }
    for field in ("end_date_time", "total_cost", "authorization_reference", "meter_id"):
        if field in obj:
            patch[field] = obj[field]
    if len(periods) > state.periods_sent:
        patch["charging_periods"] = periods[state.periods_sent :]
    state.periods_sent = max(state.periods_sent, len(periods))
    state.last_status = stamp
    return int(await _queue(db_session, partner, role, cpo, "sessions", "PATCH", path, patch, cs.session_uid))


# ---------------------------------------------------------------------------------------------- CDRs


async def enqueue_cdr(cdr: Cdr | int, db_session: AsyncSession) -> int:
    """POST the CDR to its eMSP, once (a second call for the same CDR queues nothing)."""
    row = await db_session.get(Cdr, cdr if isinstance(cdr, int) else cdr.id)
    if row is None:
        return 0
    partner, role = await _token_partner(db_session, row.emsp_id)
    if partner is None or role is None or not partner.endpoint("cdrs"):
        return 0
    cpo = await db_session.get(Party, row.cpo_id)
    if cpo is None:
        return 0
    return int(
        await _queue(
            db_session,
            partner,
            role,
            cpo,
            "cdrs",
            "POST",
            "",
            cdr_object(row),
            row.cdr_uid,
            dedupe_key=f"ocpi:{partner.id}:cdr:{row.id}",
        )
    )


# ---------------------------------------------------------------------------------------------- tariffs


async def enqueue_tariff(tariff: TariffVersion | int, db_session: AsyncSession) -> int:
    """PUT this tariff version to every partner that may see its CPO (once per version and partner)."""
    tv = await db_session.get(TariffVersion, tariff if isinstance(tariff, int) else tariff.id)
    if tv is None:
        return 0
    cpo = await db_session.get(Party, tv.cpo_id)
    if cpo is None:
        return 0
    body = tariff_object(tv, cpo)
    count = 0
    for partner in await _partners(db_session):
        if not _may_see(partner, tv.cpo_id) or not partner.endpoint("tariffs"):
            continue
        role = _receiving_roles(partner)[0]
        path = f"/{cpo.country_code}/{cpo.party_id}/{body['id']}"
        count += await _queue(
            db_session,
            partner,
            role,
            cpo,
            "tariffs",
            "PUT",
            path,
            body,
            f"{cpo.id}:{body['id']}",
            dedupe_key=f"ocpi:{partner.id}:tariff:{tv.id}",
        )
    return count


async def enqueue_tariff_delete(cpo_id: int, tariff_id: str, db_session: AsyncSession) -> int:
    """DELETE the tariff at every partner that may see its CPO."""
    cpo = await db_session.get(Party, cpo_id)
    if cpo is None:
        return 0
    count = 0
    for partner in await _partners(db_session):
        if not _may_see(partner, cpo_id) or not partner.endpoint("tariffs"):
            continue
        role = _receiving_roles(partner)[0]
        path = f"/{cpo.country_code}/{cpo.party_id}/{tariff_id}"
        count += await _queue(
            db_session, partner, role, cpo, "tariffs", "DELETE", path, None, f"{cpo.id}:{tariff_id}"
        )
    return count


# ---------------------------------------------------------------------------------------------- scanner


async def scan(db: Database, *, window: timedelta = timedelta(days=7)) -> int:
    """Queue what changed without an explicit push: CDRs and tariff versions not yet queued, sessions whose
    ``last_updated`` moved, EVSE statuses that changed, locations not yet sent. Idempotent."""
    since = utcnow() - window
    count = 0
    async with db.session() as s:
        partners = await _partners(s)
        if not partners:
            return 0
        for cdr_id in (
            await s.scalars(select(Cdr.id).where(Cdr.created_at >= since, Cdr.emsp_id.is_not(None)))
        ).all():
            count += await enqueue_cdr(cdr_id, s)
        for tv_id in (
            await s.scalars(
                select(TariffVersion.id).where(TariffVersion.created_at >= since).order_by(TariffVersion.id)
            )
        ).all():
            count += await enqueue_tariff(tv_id, s)
        session_ids = (
            await s.scalars(
                select(ChargingSession.id)
                .where(ChargingSession.last_updated >= since, ChargingSession.token_id.is_not(None))
                .order_by(ChargingSession.id)
            )
        ).all()
        for sid in session_ids:
            count += await enqueue_session_update(sid, s)
        for loc_id in (await s.scalars(select(Location.id).order_by(Location.id))).all():
            loc = await load_location(s, loc_id)
            if loc is None:
                continue
            stamp = format_rfc3339(location_last_updated(loc))
            for partner in partners:
                if not _may_see(partner, loc.cpo_id) or not partner.endpoint("locations"):
                    continue
                visible, _entries = await location_view(s, loc, _party_pks(partner))
                state = await _state(s, partner.id, "location", str(loc.id))
                if not visible:
                    if state is not None and state.last_status != HIDDEN:
                        count += await enqueue_location(loc.id, s, partner_id=partner.id)
                    continue
                if state is None or state.last_status != stamp:
                    count += await enqueue_location(loc.id, s, partner_id=partner.id)
                    continue
                for evse in loc.evses:
                    evse_state = await _state(s, partner.id, "evse", str(evse.id))
                    if evse_state is None or evse_state.last_status != evse.status:
                        count += await _patch_evse_to(s, partner, loc, evse)
    return count


async def _patch_evse_to(s: AsyncSession, partner: OcpiPartner, loc: Location, evse: EVSE) -> int:
    cpo = await s.get(Party, loc.cpo_id)
    if cpo is None:
        return 0
    role = _receiving_roles(partner)[0]
    body = {"status": evse.status, "last_updated": format_rfc3339(evse.last_updated)}
    path = f"/{cpo.country_code}/{cpo.party_id}/{loc.ocpi_id}/{evse.uid}"
    queued = await _queue(s, partner, role, cpo, "locations", "PATCH", path, body, f"{loc.id}")
    await _remember_evse(s, partner.id, evse)
    return int(queued)


# ---------------------------------------------------------------------------------------------- delivery


def _join(base: str, path: str) -> str:
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


class OcpiSender:
    """The ``ocpi`` outbox channel: one HTTP request per message to the partner's current endpoint."""

    def __init__(
        self, db: Database, *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.db = db
        self.timeout = timeout
        self.transport = transport  # None: the network (see ocpi.client)

    async def __call__(self, message: OutboxMessage) -> DeliveryResult:
        payload = message.payload or {}
        async with self.db.session() as s:
            partner = await s.get(OcpiPartner, int(message.destination))
            if partner is None or partner.status != PartnerStatus.REGISTERED or not partner.outgoing_token:
                return DeliveryResult.give_up("partner is not registered")
            token = partner.outgoing_token
            url = payload.get("url")
            if not url:
                base = partner.endpoint(payload.get("module", ""), "RECEIVER")
                if base is None:
                    return DeliveryResult.give_up(f"partner has no {payload.get('module')} receiver endpoint")
                url = _join(base, payload.get("path", ""))
        outcome = await self._send(message, payload, url, token)
        await self._record(partner.id, outcome)
        return outcome

    async def _send(self, message: OutboxMessage, payload: dict, url: str, token: str) -> DeliveryResult:
        method = payload.get("method", "PUT")
        try:
            reply = await client.request(
                method,
                url,
                token,
                json=payload.get("body") if method != "DELETE" else None,
                headers=payload.get("headers") or {},
                correlation_id=f"evhub-outbox-{message.id}",
                timeout=self.timeout,
                transport=self.transport,
            )
        except httpx.TimeoutException:
            return DeliveryResult.retry(f"{method} {url}: timeout")
        except httpx.HTTPError as exc:
            return DeliveryResult.retry(f"{method} {url}: {type(exc).__name__} {exc}")
        info: dict[str, Any] = {"http_status": reply.http_status, "status_code": reply.status_code}
        location = reply.headers.get("location")
        if location:
            info["location"] = location
        where = (
            f"{method} {url}: HTTP {reply.http_status} OCPI {reply.status_code} {reply.status_message or ''}"
        )
        if reply.http_status >= 500 or reply.http_status in (401, 408, 425, 429):
            retry_after = reply.headers.get("retry-after")
            delay = float(retry_after) if retry_after and retry_after.isdigit() else None
            return DeliveryResult.retry(where.strip(), delay)
        if reply.http_status >= 400:
            return DeliveryResult(ok=False, permanent=True, error=where.strip(), result=info)
        if reply.status_code is None:
            return DeliveryResult.retry(where.strip())
        if 1000 <= reply.status_code < 2000:
            return DeliveryResult(ok=True, result=info)
        if 2000 <= reply.status_code < 3000:
            return DeliveryResult(ok=False, permanent=True, error=where.strip(), result=info)
        return DeliveryResult.retry(where.strip())

    async def _record(self, partner_id: int, outcome: DeliveryResult) -> None:
        try:
            async with self.db.session() as s:
                partner = await s.get(OcpiPartner, partner_id)
                if partner is None:
                    return
                if outcome.ok:
                    partner.last_success_at = utcnow()
                else:
                    partner.last_error_at = utcnow()
                    partner.last_error = (outcome.error or "")[:2000]
        except Exception:  # health bookkeeping must never fail a delivery
            log.debug("could not record partner health", exc_info=True)


# ---------------------------------------------------------------------------------------------- hooks


async def _guarded(what: str, db_session: AsyncSession, call: Any) -> None:
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
