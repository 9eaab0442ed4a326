"""CDRs external CPOs post to the hub as the eMSP of its hosted eMSPs' tokens (issue 14, item 4): stored once, in
the tables the hub's own CDRs live in, at the CPO's exact price, so billing and settlement take them as they are.

:func:`receive_cdr` stores one validated CDR (:class:`ocpi.schemas.cdrs.OcpiCdr`) of the calling CPO role, in the
request's transaction, before it is acknowledged:

* **Who.** The CDR is the caller's: its ``country_code`` / ``party_id`` are the calling CPO role's (else 2001).
  Its CPO is that role's party (``ocpi_partner_roles.party_pk``: the external party, as every partner's role
  is). Its token is a token of the addressed hosted eMSP (``OCPI-to-*``): ``cdr_token``'s ``country_code``,
  ``party_id``, ``uid`` (any casing) and ``type``; none is 2004 (unknown token, HTTP 400), logged, nothing
  stored.
* **Idempotent.** A CDR is keyed by its CPO and its id (a CiString: any casing is the same CDR), the row's
  ``cdr_uid`` ``COUNTRY*PARTY*ID`` (unique). The same CDR posted again is answered success and stored once;
  one with that id and other content is refused (2001): CDRs are never updated (OCPI: a Credit CDR, then a new
  CDR with a new id). Concurrent posts meet on the session row's lock (PostgreSQL; SQLite writes one at a time)
  and the unique keys, so a race stores once too.
* **Rows.** A ``sessions`` row per CPO session (``session_id``; a CDR without one gets its own): no charger,
  ``priced`` (never rated, never pushed), the token and its fleet, driver and vehicle, the CPO's times and
  energy, ``session_uid`` a UUID derived from the CPO and its session id. A ``cdrs`` row with ``received``
  true: the CPO's object as it was posted (``data``), its totals (excl. and incl. VAT, energy, time, currency)
  in the columns, billed to the token's fleet, driver and vehicle then, and the lines billing invoices
  (:mod:`ocpi.received_prices`: the CPO's exact price). A later CDR of the same session (a correction) is the
  session's next revision.
* **Credit CDRs** (``credit: true``) credit a CDR of the same CPO received before (``credit_reference_id``),
  with its negated ``total_cost`` (excl. and incl. VAT), the same token and currency; one credit per CDR. They
  are stored as the hub stores its own (``is_credit``, ``credit_of``), so billing credits the invoiced CDR or
  puts both on the next monthly invoice. Anything else is 2001 with the reason.
* Then the CDR hooks run in the transaction (``hub.hooks.cdr``, through the session: billing's per-session
  invoice of a driver without a fleet, the receipt; OCPI's push leaves a received CDR alone,
  :func:`ocpi.push.cdr_push.enqueue_cdr`).

:func:`received_for` finds a stored one for the GET of the URL the POST answered (``Location``): only for the
CPO role that posted it, addressing the eMSP of its token.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway import current_token_rows
from kernel.domain.cdr_holder import Holder, recorded_holder, token_holder
from kernel.models import Cdr, ChargingSession, Party, PricingState, SessionStatus, Token
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole
from kernel.seams import hooks_of
from kernel.timeutil import format_rfc3339, utcnow
from ocpi import status
from ocpi.envelope import OcpiError
from ocpi.received_prices import price_explanation
from ocpi.schemas.cdrs import OcpiCdr

log = logging.getLogger(__name__)

SESSIONS_NAMESPACE = uuid.UUID("5d0b6b8e-3f51-4a0e-9b53-6c1f2a1c0d14")
"""The UUID namespace of the hub's session rows of external CPOs' sessions (``uuid5`` of ``CC*PID*SESSION``)."""
KWH = Decimal(1000)


@dataclass(frozen=True)
class Received:
    """A received CDR's row, and whether this post stored it (False: it was stored before)."""

    cdr: Cdr
    created: bool


def received_uid(country_code: str, party_id: str, cdr_id: str) -> str:
    """The ``cdr_uid`` of CPO ``country_code*party_id``'s CDR ``cdr_id``: unique per CPO in any casing."""
    return f"{country_code.upper()}*{party_id.upper()}*{cdr_id.upper()}"


def _session_uid(country_code: str, party_id: str, body: OcpiCdr) -> str:
    key = body.session_id.upper() if body.session_id else f"CDR:{body.id.upper()}"
    return str(uuid.uuid5(SESSIONS_NAMESPACE, f"{country_code}*{party_id}*{key}"))


CI_FIELDS = ("id", "session_id", "authorization_reference", "credit_reference_id", "invoice_reference_id")
CI_NESTED = {
    "cdr_token": ("uid", "contract_id"),
    "cdr_location": ("id", "evse_uid", "evse_id", "connector_id"),
}


def _content(cdr: OcpiCdr) -> dict[str, Any]:
    """What makes a CDR the same CDR: everything but ``last_updated`` (a resend may restamp it), the CiStrings
    in upper case (a resend may re-case them)."""
    view = cdr.model_dump(exclude={"last_updated"})
    for name in CI_FIELDS:
        if isinstance(view.get(name), str):
            view[name] = view[name].upper()
    for part, names in CI_NESTED.items():
        for name in names:
            if isinstance(view[part].get(name), str):
                view[part][name] = view[part][name].upper()
    return view


def _same(stored: Cdr, body: OcpiCdr) -> bool:
    """Whether ``body`` is the CDR stored as ``stored`` (:func:`_content`)."""
    try:
        before = OcpiCdr.model_validate(stored.data)
    except ValueError:
        return False
    return _content(before) == _content(body)


async def _by_uid(db_session: AsyncSession, uid: str) -> Cdr | None:
    return await db_session.scalar(select(Cdr).where(Cdr.cdr_uid == uid, Cdr.received.is_(True)))


def _already(stored: Cdr, body: OcpiCdr, role: OcpiPartnerRole) -> Received:
    if stored.cpo_id != role.party_pk or not _same(stored, body):
        raise OcpiError(
            status.INVALID_PARAMETERS,
            f"CDR {body.id} was received before with other content: a CDR is never updated "
            "(send a Credit CDR of it, then a new CDR with a new id)",
        )
    return Received(stored, created=False)


async def _token(db_session: AsyncSession, emsp: Party, body: OcpiCdr, partner: OcpiPartner) -> Token:
    """The addressed hosted eMSP's token the CDR names; 2004 (logged) when it has none."""
    t = body.cdr_token
    rows: list[Token] = []
    if (t.country_code, t.party_id) == (emsp.country_code, emsp.party_id):
        rows = list(
            (
                await db_session.scalars(
                    select(Token)
                    .where(Token.emsp_id == emsp.id, Token.uid_key == t.uid.upper(), Token.type == t.type)
                    .order_by(Token.id)
                )
            ).all()
        )
    current = current_token_rows(rows)
    if not current:
        log.warning(
            "refused CDR %s of CPO %s*%s from partner %s (%s): unknown token %s*%s %s (%s) for eMSP %s",
            body.id,
            body.country_code,
            body.party_id,
            partner.id,
            partner.name,
            t.country_code,
            t.party_id,
            t.uid,
            t.type,
            emsp.key,
        )
        raise OcpiError(
            status.UNKNOWN_TOKEN,
            f"Unknown token {t.country_code}*{t.party_id} {t.uid} ({t.type}): not a token of eMSP {emsp.key} "
            f"on this platform; CDR {body.id} not stored",
        )
    return current[0]


async def _anchor(
    db_session: AsyncSession, role: OcpiPartnerRole, body: OcpiCdr, token: Token, now: datetime
) -> ChargingSession:
    """The session row of the CDR's session, created when it is the first CDR of it; locked (PostgreSQL) until
    the transaction ends, so CDRs of one session are stored one at a time."""
    uid = _session_uid(role.country_code, role.party_id, body)
    found = await db_session.scalar(select(ChargingSession).where(ChargingSession.session_uid == uid))
    if found is None:
        holder = token_holder(token)
        row = ChargingSession(
            session_uid=uid,
            charge_point_id=None,
            transaction_id=(body.session_id or body.id)[:64],
            cpo_id=role.party_pk,
            location_id=None,
            token_id=token.id,
            id_tag=token.uid,
            fleet_id=holder.fleet_id,
            driver_name=holder.driver_name,
            vehicle=holder.vehicle,
            holder_recorded=True,
            auth_method=body.auth_method,
            status=SessionStatus.COMPLETED,
            start_time=body.start_date_time,
            end_time=body.end_date_time,
            energy_wh=body.total_energy * KWH,
            currency=body.currency,
            pricing_state=PricingState.PRICED,
            data={
                "received": True,
                "cpo_session_id": body.session_id,
                "cdr_location": body.cdr_location.model_dump(mode="json", exclude_none=True),
            },
            last_updated=now,
        )
        try:
            async with db_session.begin_nested():
                db_session.add(row)
                await db_session.flush()
            found = row
        except IntegrityError:  # a concurrent post of this session's first CDR created it
            found = await db_session.scalar(select(ChargingSession).where(ChargingSession.session_uid == uid))
            if found is None:
                raise
    await db_session.execute(
        select(ChargingSession.id).where(ChargingSession.id == found.id).with_for_update()
    )
    if found.cpo_id != role.party_pk or found.token_id != token.id:
        raise OcpiError(
            status.INVALID_PARAMETERS,
            f"session {body.session_id} has CDRs of another token: CDR {body.id} not stored",
        )
    return found


async def _credited(
    db_session: AsyncSession, role: OcpiPartnerRole, body: OcpiCdr, token: Token
) -> tuple[Cdr, ChargingSession]:
    """The CDR a credit CDR credits, and its session (locked); 2001 with the reason when it cannot be."""
    ref = body.credit_reference_id or ""
    original = await _by_uid(db_session, received_uid(role.country_code, role.party_id, ref))
    if original is None or original.cpo_id != role.party_pk:
        raise OcpiError(
            status.INVALID_PARAMETERS, f"credit_reference_id {ref}: no CDR {ref} of this CPO here"
        )
    session = await db_session.get(ChargingSession, original.session_id)
    assert session is not None  # a foreign key
    await db_session.execute(
        select(ChargingSession.id).where(ChargingSession.id == session.id).with_for_update()
    )
    problem = None
    if original.is_credit:
        problem = f"CDR {ref} is a credit CDR itself"
    elif await db_session.scalar(select(exists().where(Cdr.credit_of == original.id))):
        problem = f"CDR {ref} was credited already"
    elif original.token_id != token.id or original.currency != body.currency:
        problem = f"CDR {ref} is of another token or currency"
    elif body.total_cost.excl_vat != -original.total_cost_excl_vat or (
        body.total_cost.incl_vat is not None
        and original.total_cost_incl_vat is not None
        and body.total_cost.incl_vat != -original.total_cost_incl_vat
    ):
        problem = (
            f"a credit CDR's total_cost is the negated total_cost of CDR {ref} "
            f"(excl_vat {-original.total_cost_excl_vat})"
        )
    if problem:
        raise OcpiError(status.INVALID_PARAMETERS, f"Credit CDR {body.id} not stored: {problem}")
    return original, session


async def _next_revision(db_session: AsyncSession, session: ChargingSession) -> int:
    top = await db_session.scalar(
        select(func.max(Cdr.revision)).where(Cdr.session_id == session.id, Cdr.is_credit.is_(False))
    )
    return 0 if top is None else top + 1


async def receive_cdr(
    db_session: AsyncSession,
    partner: OcpiPartner,
    role: OcpiPartnerRole,
    emsp: Party,
    body: OcpiCdr,
    raw: dict[str, Any],
) -> Received:
    """Store the CDR ``body`` (``raw``: as posted) that CPO role ``role`` of ``partner`` sent to hosted eMSP
    ``emsp``, once (see the module docstring); OcpiError (2001, 2004) when it is refused."""
    if (body.country_code, body.party_id) != (role.country_code, role.party_id):
        raise OcpiError(
            status.INVALID_PARAMETERS,
            f"CDR {body.id} is of CPO {body.country_code}*{body.party_id}, not of the calling role "
            f"{role.country_code}*{role.party_id}",
        )
    uid = received_uid(role.country_code, role.party_id, body.id)
    stored = await _by_uid(db_session, uid)
    if stored is not None:
        return _already(stored, body, role)
    token = await _token(db_session, emsp, body, partner)
    now = utcnow()
    if body.is_credit:
        original, session = await _credited(db_session, role, body, token)
        revision, credit_of = original.revision, original.id
        holder = Holder(original.fleet_id, original.driver_name, original.vehicle)
        explanation: dict[str, Any] = {"credit_of": original.cdr_uid, "currency": body.currency}
    else:
        session = await _anchor(db_session, role, body, token, now)
        revision, credit_of = await _next_revision(db_session, session), None
        holder = Holder(session.fleet_id, session.driver_name, session.vehicle)
        explanation = price_explanation(body)
    stored = await _by_uid(db_session, uid)  # posted meanwhile (the session lock waited for it)
    if stored is not None:
        return _already(stored, body, role)
    explanation["received"] = {
        "partner_id": partner.id,
        "partner": partner.name,
        "cpo": f"{role.country_code}*{role.party_id}",
        "at": format_rfc3339(now),
    }
    cdr = Cdr(
        cdr_uid=uid,
        session_id=session.id,
        revision=revision,
        is_credit=body.is_credit,
        credit_of=credit_of,
        cpo_id=role.party_pk,
        emsp_id=token.emsp_id,
        location_id=None,
        token_id=token.id,
        **recorded_holder(holder),
        received=True,
        currency=body.currency,
        start_date_time=body.start_date_time,
        end_date_time=body.end_date_time,
        total_energy_kwh=body.total_energy,
        total_time_hours=body.total_time,
        total_cost_excl_vat=body.total_cost.excl_vat,
        total_cost_incl_vat=body.total_cost.incl_vat,
        tariff_versions=[],
        explanation=explanation,
        data=raw,
        created_at=now,
        last_updated=now,
    )
    try:
        async with db_session.begin_nested():
            db_session.add(cdr)
            await db_session.flush()
    except IntegrityError:  # the same id posted at once under another session id: one of them wins
        stored = await _by_uid(db_session, uid)
        if stored is None:
            raise
        return _already(stored, body, role)
    log.info(
        "received CDR %s of CPO %s*%s (partner %s) for token %s: %s %s excl. VAT",
        body.id,
        role.country_code,
        role.party_id,
        partner.id,
        token.uid,
        body.total_cost.excl_vat,
        body.currency,
    )
    hooks = hooks_of(db_session)
    for hook in hooks.cdr if hooks is not None else ():
        await hook(db_session, cdr)
    return Received(cdr, created=True)


async def received_for(
    db_session: AsyncSession, role: OcpiPartnerRole, emsp_ids: list[int], pk: int
) -> Cdr | None:
    """Received CDR ``pk`` when CPO role ``role`` posted it and its token is of one of ``emsp_ids``; else None."""
    return await db_session.scalar(
        select(Cdr).where(
            Cdr.id == pk,
            Cdr.received.is_(True),
            Cdr.cpo_id == role.party_pk,
            Cdr.emsp_id.in_(emsp_ids),
        )
    )
