"""Rating: sessions that ended become exactly one immutable OCPI 2.2.1 CDR each.

The gateway marks an ended session ``pricing_state = pending`` in the same transaction that closes it; this
module picks pending sessions up from the database (never from memory), prices them with the pure engine
(:func:`tariffs.core.engine.price_session`) over the tariff versions valid during the session, and writes the CDR
and ``pricing_state = priced`` in one transaction. Idempotent: the CDR's id is derived from the session, a
unique key allows one original CDR per session, and a re-run finds the CDR and only marks the session.
A session that cannot be priced is marked ``failed`` with the reason (visible, retried by ``evhub tariffs rerate``).

Hooks (``CdrHook``) run inside the CDR's transaction: OCPI queues the CDR for partners, the portal queues the
driver's receipt — so a CDR never exists without its deliveries queued.

A correction is a credit CDR (negated amounts, ``credit_reference_id``) plus a new CDR with a higher
revision, never an edit (:func:`correct_cdr`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel import metrics
from kernel.db.engine import Database
from kernel.domain.cdr_token import cdr_token
from kernel.models import (
    EVSE,
    Cdr,
    ChargingSession,
    Connector,
    Location,
    MeterValue,
    Party,
    PricingState,
    Token,
)
from kernel.timeutil import format_rfc3339, utcnow
from tariffs.core.charging_periods import MeterSample, periods_from_meter_values
from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import PricingError, price_session
from tariffs.core.pricing_result import PricingResult
from tariffs.core.render import cdr_fields, explanation
from tariffs.core.tariff_json import to_jsonable
from tariffs.tariff_versions import load_versions

log = logging.getLogger(__name__)

CdrHook = Callable[[AsyncSession, Cdr], Awaitable[Any]]
ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CDR_NAMESPACE = uuid.UUID("6f1d3c2a-8f7e-4c1b-9a55-0e7d2f4b9c10")
DEFAULT_TARIFF_ID = "DEFAULT"


class RatingError(RuntimeError):
    """A session that cannot be priced (no tariff, no location ...)."""


def cdr_uid_for(session_uid: str, revision: int, credit: bool) -> str:
    """Deterministic CDR id (36 chars, within OCPI's 39): the same session always yields the same id."""
    return str(uuid.uuid5(CDR_NAMESPACE, f"{session_uid}:{revision}:{'credit' if credit else 'cdr'}"))


def _wh(value: Decimal, unit: str) -> Decimal:
    return value * 1000 if unit.lower() == "kwh" else value


RESET_DROP_WH = Decimal(10)
"""A register falling by more than this is a reset (as the gateway decides); less is rounding noise."""


def meter_samples(rows: Sequence[MeterValue], session: ChargingSession) -> list[MeterSample]:
    """Cumulative energy since the session start, ending exactly at the session's energy.

    A register reset continues from the last value; a small step back (rounding between decimal samples and
    an integer meterStop) counts as no energy. The gateway's ``energy_wh`` is the session's total: the series
    only gives it its shape over time, so samples are capped at it and the last one is exactly it."""
    energy: dict[Any, Decimal] = {}
    power: dict[Any, Decimal] = {}
    for mv in rows:
        if mv.phase:
            continue
        if mv.measurand == ENERGY_REGISTER:
            energy[mv.timestamp] = _wh(mv.value, mv.unit)
        elif mv.measurand == POWER:
            power[mv.timestamp] = mv.value * 1000 if mv.unit.lower() == "kw" else mv.value
    samples: list[MeterSample] = []
    previous = session.meter_start_wh
    total = Decimal(0)
    for ts in sorted(energy):
        reading = energy[ts]
        if previous is None:
            previous = reading
        delta = reading - previous
        if delta >= 0:
            total += delta
        elif delta < -RESET_DROP_WH:
            total += reading  # the register restarted near zero
        previous = max(reading, previous) if -RESET_DROP_WH <= delta < 0 else reading
        samples.append(MeterSample(ts, total, power.get(ts)))
    end = session.end_time
    if end is not None:
        final = max(session.energy_wh or Decimal(0), Decimal(0))
        samples = [
            MeterSample(x.timestamp, min(x.energy_wh, final), x.power_w, x.current_a)
            for x in samples
            if x.timestamp < end
        ]
        samples.append(MeterSample(end, final))
    if not samples or samples[0].timestamp > session.start_time:
        samples.insert(0, MeterSample(session.start_time, Decimal(0)))
    return samples


async def _tariff_for(s: AsyncSession, session: ChargingSession) -> tuple[str, list]:
    tariff_ids: list[str] = []
    if session.connector_pk is not None:
        connector = await s.get(Connector, session.connector_pk)
        if connector is not None:
            tariff_ids = list(connector.tariff_ids or [])
    elif session.evse_pk is not None:
        first = await s.scalar(
            select(Connector).where(Connector.evse_pk == session.evse_pk).order_by(Connector.id).limit(1)
        )
        tariff_ids = list(first.tariff_ids or []) if first else []
    for tariff_id in [*tariff_ids, DEFAULT_TARIFF_ID]:
        versions = await load_versions(s, session.cpo_id, tariff_id)
        if versions:
            return tariff_id, versions
    raise RatingError(
        f"no tariff for session {session.session_uid}: connector tariff_ids {tariff_ids} and no "
        f"'{DEFAULT_TARIFF_ID}' tariff of the CPO"
    )


def _location_object(loc: Location, evse: EVSE | None, connector: Connector | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": loc.ocpi_id,
        "name": loc.name,
        "address": loc.address,
        "city": loc.city,
        "postal_code": loc.postal_code,
        "country": loc.country,
        "coordinates": {"latitude": loc.latitude, "longitude": loc.longitude},
        "evse_uid": evse.uid if evse else "",
        "evse_id": (evse.evse_id or evse.uid) if evse else "",
        "connector_id": connector.connector_id if connector else "",
        "connector_standard": connector.standard if connector else "",
        "connector_format": connector.format if connector else "",
        "connector_power_type": connector.power_type if connector else "",
    }
    return {k: v for k, v in out.items() if v is not None}


def _signed_data(session: ChargingSession) -> dict[str, Any] | None:
    raw = session.signed_meter_data
    if not raw:
        return None
    method = "OCMF" if raw.lstrip().startswith("OCMF|") else "UNKNOWN"
    return {
        "encoding_method": method,
        "signed_values": [{"nature": "End", "plain_data": "", "signed_data": raw}],
    }


async def build_cdr(
    s: AsyncSession, session: ChargingSession, *, revision: int = 0
) -> tuple[Cdr, PricingResult]:
    """Price ``session`` and build its CDR row (not yet added to the session)."""
    if session.end_time is None:
        raise RatingError(f"session {session.session_uid} has not ended")
    loc = await s.get(Location, session.location_id) if session.location_id else None
    if loc is None:
        raise RatingError(f"session {session.session_uid} has no location")
    cpo = await s.get(Party, session.cpo_id)
    evse = await s.get(EVSE, session.evse_pk) if session.evse_pk else None
    connector = await s.get(Connector, session.connector_pk) if session.connector_pk else None
    if connector is None and evse is not None:
        connector = await s.scalar(
            select(Connector).where(Connector.evse_pk == evse.id).order_by(Connector.id)
        )
    token = await s.get(Token, session.token_id) if session.token_id else None
    tariff_id, stored = await _tariff_for(s, session)
    versions = [v.tariff for v in stored]
    rows = (
        await s.scalars(
            select(MeterValue)
            .where(MeterValue.session_id == session.id, MeterValue.measurand.in_((ENERGY_REGISTER, POWER)))
            .order_by(*MeterValue.__table__.primary_key.columns)
        )
    ).all()
    samples = meter_samples(rows, session)
    compiled = [compile_tariff(t) for t in versions]
    periods = periods_from_meter_values(
        samples, session.start_time, session.end_time, compiled, loc.time_zone
    )
    result = price_session(
        compiled, periods, session.start_time, session.end_time, loc.time_zone, precut=True
    )
    fields = to_jsonable(cdr_fields(result), decimals_as="keep")
    used_versions = {label for _tid, label in result.tariffs_used}
    tariffs_used = [
        to_jsonable(v.tariff.model_dump(mode="python", exclude_none=True), decimals_as="keep")
        for v in stored
        if _label(v) in used_versions
    ] or [to_jsonable(stored[-1].tariff.model_dump(mode="python", exclude_none=True), decimals_as="keep")]
    uid = cdr_uid_for(session.session_uid, revision, False)
    now = utcnow()
    data: dict[str, Any] = {
        "country_code": cpo.country_code if cpo else "",
        "party_id": cpo.party_id if cpo else "",
        "id": uid,
        "session_id": session.session_uid,
        "cdr_token": cdr_token(token, session),
        "auth_method": session.auth_method,
        **{k: v for k, v in (session.data or {}).items() if k == "authorization_reference" and v},
        "cdr_location": _location_object(loc, evse, connector),
        "tariffs": tariffs_used,
        **fields,
        "home_charging_compensation": False,
        "last_updated": format_rfc3339(now),
    }
    signed = _signed_data(session)
    if signed:
        data["signed_data"] = signed
    cdr = Cdr(
        cdr_uid=uid,
        session_id=session.id,
        revision=revision,
        is_credit=False,
        cpo_id=session.cpo_id,
        emsp_id=token.emsp_id if token else None,
        location_id=loc.id,
        token_id=token.id if token else None,
        currency=result.currency,
        start_date_time=result.session_start,
        end_date_time=result.session_end,
        total_energy_kwh=result.total_energy,
        total_time_hours=result.total_time,
        total_cost_excl_vat=result.total_cost.excl_vat,
        total_cost_incl_vat=result.total_cost.incl_vat,
        tariff_versions=[
            {"tariff_id": tid, "version": label, "row_ids": [v.row_id for v in stored if _label(v) == label]}
            for tid, label in result.tariffs_used
        ]
        or [{"tariff_id": tariff_id, "version": None, "row_ids": []}],
        explanation=to_jsonable(explanation(result), decimals_as="string"),
        data=data,
        created_at=now,
        last_updated=now,
    )
    return cdr, result


def _label(v: Any) -> str:
    """The engine's version label of a stored version (see :attr:`tariffs.core.tariff_document.Tariff.version`)."""
    return v.tariff.version


async def _claim(s: AsyncSession, db: Database, session_id: int) -> ChargingSession | None:
    query = select(ChargingSession).where(
        ChargingSession.id == session_id, ChargingSession.pricing_state == PricingState.PENDING
    )
    if not db.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    return await s.scalar(query)


async def rate_session(
    db: Database, session_id: int, hooks: Sequence[CdrHook] = ()
) -> tuple[Cdr | None, bool]:
    """Price one pending session into its CDR (idempotent). Returns (CDR or None, whether it was created now)."""
    started = time.perf_counter()
    try:
        async with db.session() as s:
            session = await _claim(s, db, session_id)
            if session is None:
                return None, False
            existing = await s.scalar(
                select(Cdr).where(Cdr.session_id == session.id, Cdr.revision == 0, Cdr.is_credit.is_(False))
            )
            if existing is not None:
                session.pricing_state = PricingState.PRICED
                return existing, False
            cdr, _result = await build_cdr(s, session)
            s.add(cdr)
            await s.flush()
            session.pricing_state = PricingState.PRICED
            session.currency = cdr.currency
            session.pricing_error = None
            for hook in hooks:
                await hook(s, cdr)
            log.info(
                "cdr created",
                extra={
                    "fields": {
                        "cdr": cdr.cdr_uid,
                        "session": session.session_uid,
                        "total_incl_vat": str(cdr.total_cost_incl_vat),
                        "currency": cdr.currency,
                    }
                },
            )
        metrics.pricing_done(started, priced=True)  # committed
        return cdr, True
    except (RatingError, PricingError, ValueError) as exc:
        async with db.session() as s:
            session = await s.get(ChargingSession, session_id)
            if session is not None and session.pricing_state == PricingState.PENDING:
                session.pricing_state = PricingState.FAILED
                session.pricing_error = str(exc)[:2000]
        log.warning(
            "session could not be priced", extra={"fields": {"session_id": session_id, "error": str(exc)}}
        )
        metrics.pricing_done(started, priced=False)
        return None, False


async def rate_pending(db: Database, hooks: Sequence[CdrHook] = (), *, limit: int = 200) -> int:
    """Rate every pending session (oldest end first); returns how many CDRs were created."""
    async with db.session() as s:
        ids = (
            await s.scalars(
                select(ChargingSession.id)
                .where(ChargingSession.pricing_state == PricingState.PENDING)
                .order_by(ChargingSession.end_time, ChargingSession.id)
                .limit(limit)
            )
        ).all()
    made = 0
    for sid in ids:
        _cdr, created = await rate_session(db, sid, hooks)
        made += created
    return made


async def retry_failed(db: Database) -> int:
    """Put failed sessions back to pending (after a missing tariff was imported, say)."""
    async with db.session() as s:
        rows = (
            await s.scalars(
                select(ChargingSession).where(ChargingSession.pricing_state == PricingState.FAILED)
            )
        ).all()
        for row in rows:
            row.pricing_state = PricingState.PENDING
        return len(rows)


def _negate(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (_negate(v) if k in ("excl_vat", "incl_vat") else v) for k, v in value.items()}
    if isinstance(value, int | float | Decimal):
        return -value
    return value


async def correct_cdr(db: Database, cdr_uid: str, hooks: Sequence[CdrHook] = ()) -> tuple[Cdr, Cdr]:
    """Credit ``cdr_uid`` and re-rate its session with the tariff versions stored now: (credit, new CDR)."""
    async with db.session() as s:
        original = await s.scalar(select(Cdr).where(Cdr.cdr_uid == cdr_uid, Cdr.is_credit.is_(False)))
        if original is None:
            raise RatingError(f"unknown CDR {cdr_uid}")
        already = await s.scalar(select(Cdr.id).where(Cdr.credit_of == original.id))
        if already is not None:
            raise RatingError(f"CDR {cdr_uid} was already credited; correct its latest revision instead")
        session = await s.get(ChargingSession, original.session_id)
        credit_uid = cdr_uid_for(session.session_uid, original.revision, True)
        data = dict(original.data)
        for key in (
            "total_cost",
            "total_fixed_cost",
            "total_energy_cost",
            "total_time_cost",
            "total_parking_cost",
            "total_reservation_cost",
        ):
            if key in data:
                data[key] = _negate(data[key])
        now = utcnow()
        data.update(
            id=credit_uid, credit=True, credit_reference_id=original.cdr_uid, last_updated=format_rfc3339(now)
        )
        credit = Cdr(
            cdr_uid=credit_uid,
            session_id=original.session_id,
            revision=original.revision,
            is_credit=True,
            credit_of=original.id,
            cpo_id=original.cpo_id,
            emsp_id=original.emsp_id,
            location_id=original.location_id,
            token_id=original.token_id,
            currency=original.currency,
            start_date_time=original.start_date_time,
            end_date_time=original.end_date_time,
            total_energy_kwh=original.total_energy_kwh,
            total_time_hours=original.total_time_hours,
            total_cost_excl_vat=-original.total_cost_excl_vat,
            total_cost_incl_vat=-original.total_cost_incl_vat
            if original.total_cost_incl_vat is not None
            else None,
            tariff_versions=original.tariff_versions,
            explanation={"credit_of": original.cdr_uid},
            data=data,
            created_at=now,
            last_updated=now,
        )
        s.add(credit)
        fresh, _ = await build_cdr(s, session, revision=original.revision + 1)
        s.add(fresh)
        await s.flush()
        for hook in hooks:
            await hook(s, credit)
            await hook(s, fresh)
    metrics.cdrs_created("credit")
    metrics.cdrs_created("correction")
    return credit, fresh
