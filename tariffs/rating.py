"""Rating: sessions that ended become exactly one current, immutable OCPI 2.2.1 CDR each.

The gateway marks an ended session ``pricing_state = pending`` in the same transaction that closes it; this
module picks pending sessions up from the database (never from memory), builds each one's CDR
(:func:`tariffs.cdr_builder.build_cdr`: load, derive, price with the pure engine, assemble) and writes the CDR
and ``pricing_state = priced`` in one transaction. Idempotent: the CDR's id is derived from the session, a
unique key allows one CDR per session and revision, and a replayed hand-off re-derives the CDR, finds it equal
to the current one and only marks the session. A session that cannot be priced is marked ``failed`` with the
reason (visible, retried by ``evhub tariffs rerate``).

Late data (M4): a pending session waits until its ``price_after`` (the gateway's grace for out-of-order data)
has passed by the clock (a session to re-price too, so more late data makes one correction, not several). A
session the gateway moved to ``reprice`` (its data changed after it was priced), or a pending one that
already has a CDR, is re-derived: when the new CDR's content (:func:`cdr_content`: times, energy, totals,
periods, token, location) differs from the current revision, the current one is credited and revision+1
issued, in one transaction (:func:`issue_correction`, the same path as ``evhub cdrs correct``); otherwise the
session goes back to ``priced`` with no new CDR. OCPI 2.2.1 CDRs: "a CDR ... cannot be changed or replaced
once sent to the eMSP ... Instead, a Credit CDR can be sent." and "After having sent the Credit CDR, the CPO
can send a new CDR with a new unique ID".

Holds (M8): before pricing, every claimed session is checked (:func:`kernel.plausibility.plausibility`: span,
times in the future or before 2010, end before start, energy beyond its connector's power, ``CLOCK_SUSPECT``);
any reason -> ``pricing_state = held`` with ``review_reason``, no CDR, no hook run (nothing pushed), a log
line. An operator's release (back to pending, with corrected times) rates it again.

Hooks (``CdrHook``) run inside the CDR's transaction: OCPI queues the CDR for partners, the portal queues the
driver's receipt — so a CDR never exists without its deliveries queued.

A correction is a credit CDR (negated amounts, ``credit_reference_id``) plus a new CDR with a higher
revision, never an edit (:func:`correct_cdr`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel import metrics
from kernel.db.engine import Database
from kernel.meter_reading import CURRENT, ENERGY_REGISTER, POWER
from kernel.models import Cdr, ChargingSession, MeterValue, PricingState
from kernel.plausibility import Limits, plausibility, pricing_work
from kernel.seams import CdrHook
from kernel.timeutil import format_rfc3339, utcnow
from tariffs.cdr_builder import RatingError, build_cdr, cdr_uid_for, session_connector
from tariffs.core.engine import PricingError

log = logging.getLogger(__name__)

CONTENT_FIELDS = (
    "start_date_time",
    "end_date_time",
    "currency",
    "total_cost",
    "total_fixed_cost",
    "total_energy",
    "total_energy_cost",
    "total_time",
    "total_time_cost",
    "total_parking_time",
    "total_parking_cost",
    "total_reservation_cost",
    "charging_periods",
    "cdr_token",
    "auth_method",
    "authorization_reference",
    "cdr_location",
)
"""The OCPI CDR fields that make its money and say who pays it where: a re-derived CDR equal in all of them
is the same CDR (a late start that brings the token, or the real connector, is a correction too)."""


def cdr_content(cdr: Cdr) -> dict[str, Any]:
    """What a re-derived CDR is compared on (times, energy, totals, periods, token, location), from its OCPI
    object (pure)."""
    data = cdr.data or {}
    return {key: data.get(key) for key in CONTENT_FIELDS}


PARALLEL = 4
"""Sessions priced at once on PostgreSQL (each claimed with SKIP LOCKED in its own transaction, its pure
pricing in a worker thread): a backlog of ended sessions is priced in parallel, not one after the other."""


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Pending or to be re-priced, and past its ``price_after`` (None: at once)."""
    return and_(
        ChargingSession.pricing_state.in_((PricingState.PENDING, PricingState.REPRICE)),
        or_(ChargingSession.price_after.is_(None), ChargingSession.price_after <= now),
    )


async def _claim(
    db_session: AsyncSession, db: Database, session_id: int, now: datetime
) -> ChargingSession | None:
    """The claimable session ``session_id``, locked for this transaction (skipped if another worker has it)."""
    query = select(ChargingSession).where(ChargingSession.id == session_id, _claimable(now))
    if not db.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    return await db_session.scalar(query)


async def current_cdr(db_session: AsyncSession, session_id: int) -> Cdr | None:
    """The session's current CDR: its latest non-credit revision (None when it has none)."""
    return await db_session.scalar(
        select(Cdr)
        .where(Cdr.session_id == session_id, Cdr.is_credit.is_(False))
        .order_by(Cdr.revision.desc())
        .limit(1)
    )


async def _work_bound(db_session: AsyncSession, charging_session: ChargingSession) -> str | None:
    """Why pricing this session would cost too much (:func:`kernel.plausibility.pricing_work`), judged from
    its span and one count of its readings before anything is loaded; None when it may be priced."""
    if charging_session.end_time is None:
        return None
    readings = await db_session.scalar(
        select(func.count())
        .select_from(MeterValue)
        .where(
            MeterValue.session_id == charging_session.id,
            MeterValue.measurand.in_((ENERGY_REGISTER, POWER, CURRENT)),
        )
    )
    return pricing_work(charging_session.start_time, charging_session.end_time, int(readings or 0))


def released_as_is(charging_session: ChargingSession) -> bool:
    """The operator reviewed the held session and released it to be billed as it is
    (``evhub sessions release --accept``): the plausibility checks no longer hold it."""
    released = (charging_session.data or {}).get("released")
    return isinstance(released, dict) and released.get("accepted") is True


async def hold_reasons(
    db_session: AsyncSession, charging_session: ChargingSession, *, now: datetime, limits: Limits
) -> list[str]:
    """Why the session must not be billed (:func:`kernel.plausibility.plausibility` with its connector's
    ``max_electric_power``); [] when it may be priced, when it has not ended (nothing to judge), or when an
    operator released it to be billed as it is.

    The charger's times are judged against ``now``, or the session's ``last_updated`` (the hub's clock when it
    last received the session's data) when that is later: the latest instant the hub knows it has lived
    through, so a hub clock set back never makes a stamp it already recorded look like the future."""
    if charging_session.end_time is None or released_as_is(charging_session):
        return []
    connector = await session_connector(db_session, charging_session)
    return plausibility(
        charging_session.start_time,
        charging_session.end_time,
        charging_session.energy_wh,
        connector.max_electric_power if connector is not None else None,
        max(now, charging_session.last_updated or now),
        limits,
        charging_session.flags or (),
    )


async def rate_session(
    db: Database,
    session_id: int,
    hooks: Sequence[CdrHook] = (),
    *,
    now: datetime | None = None,
    limits: Limits | None = None,
) -> tuple[Cdr | None, bool]:
    """Price one claimable session (idempotent). Returns (its current CDR or None, whether a CDR was created
    now: an original, or a correction's new revision). An implausible session (``limits``, default the
    settings' defaults) is held instead: ``held`` with ``review_reason``, no CDR, no hook run."""
    started = time.perf_counter()
    now = now or utcnow()
    corrected = False
    try:
        async with db.session() as db_session:
            charging_session = await _claim(db_session, db, session_id, now)
            if charging_session is None:
                return None, False
            reasons = await hold_reasons(db_session, charging_session, now=now, limits=limits or Limits())
            if reasons:
                _hold(charging_session, reasons)
                return None, False
            too_much = await _work_bound(db_session, charging_session)
            if too_much is not None:
                raise RatingError(too_much)  # marked failed with the reason, below
            current = await current_cdr(db_session, charging_session.id)
            revision = 0 if current is None else current.revision + 1
            cdr, _result = await build_cdr(
                db_session, charging_session, now=now, revision=revision, previous=current
            )
            if current is not None and cdr_content(cdr) == cdr_content(current):
                _mark_priced(charging_session, current)
                return current, False
            if current is not None:
                await issue_correction(db_session, current, cdr, charging_session, now=now, hooks=hooks)
                corrected = True
            else:
                db_session.add(cdr)
                await db_session.flush()
                for hook in hooks:
                    await hook(db_session, cdr)
            _mark_priced(charging_session, cdr)
            log.info(
                "cdr corrected" if corrected else "cdr created",
                extra={
                    "fields": {
                        "cdr": cdr.cdr_uid,
                        "revision": cdr.revision,
                        "session": charging_session.session_uid,
                        "total_incl_vat": str(cdr.total_cost_incl_vat),
                        "currency": cdr.currency,
                    }
                },
            )
        # committed
        if corrected:
            metrics.cdrs_created("credit")
            metrics.cdrs_created("correction")
        else:
            metrics.pricing_done(started, priced=True)
        return cdr, True
    except (RatingError, PricingError, ValueError) as exc:
        async with db.session() as db_session:
            failed = await db_session.get(ChargingSession, session_id)
            if failed is not None and failed.pricing_state in (PricingState.PENDING, PricingState.REPRICE):
                failed.pricing_state = PricingState.FAILED
                failed.pricing_error = str(exc)[:2000]
        log.warning(
            "session could not be priced", extra={"fields": {"session_id": session_id, "error": str(exc)}}
        )
        metrics.pricing_done(started, priced=False)
        return None, False


def _mark_priced(charging_session: ChargingSession, cdr: Cdr) -> None:
    charging_session.pricing_state = PricingState.PRICED
    charging_session.currency = cdr.currency
    charging_session.pricing_error = None
    charging_session.review_reason = None


def _hold(charging_session: ChargingSession, reasons: Sequence[str]) -> None:
    charging_session.pricing_state = PricingState.HELD
    charging_session.review_reason = "; ".join(reasons)[:2000]
    log.warning(
        "session held for review, not priced",
        extra={"fields": {"session": charging_session.session_uid, "reason": charging_session.review_reason}},
    )


async def rate_pending(
    db: Database,
    hooks: Sequence[CdrHook],
    *,
    limit: int = 200,
    now: datetime | None = None,
    limits: Limits | None = None,
) -> int:
    """Rate every claimable session (pending past its ``price_after``, or to re-price; oldest end first);
    returns how many CDRs were created (originals and corrections' new revisions); :data:`PARALLEL` at once on
    PostgreSQL. ``hooks`` (the CDR deliveries) is required so that no caller forgets them; ``()`` only where nobody is to be told. ``now``
    defaults to the hub's clock, ``limits`` (the plausibility bounds) to the settings' defaults."""
    now = now or utcnow()
    async with db.session() as db_session:
        ids = (
            await db_session.scalars(
                select(ChargingSession.id)
                .where(_claimable(now))
                .order_by(ChargingSession.end_time, ChargingSession.id)
                .limit(limit)
            )
        ).all()
    if db.is_sqlite:  # one writer at a time: in parallel they would only wait for the database's write lock
        made = 0
        for sid in ids:
            _cdr, created = await rate_session(db, sid, hooks, now=now, limits=limits)
            made += created
        return made
    gate = asyncio.Semaphore(PARALLEL)

    async def one(sid: int) -> bool:
        async with gate:
            return (await rate_session(db, sid, hooks, now=now, limits=limits))[1]

    return sum(await asyncio.gather(*(one(sid) for sid in ids)))


async def retry_failed(db: Database) -> int:
    """Put failed sessions back to pending (after a missing tariff was imported, say)."""
    async with db.session() as db_session:
        rows = (
            await db_session.scalars(
                select(ChargingSession).where(ChargingSession.pricing_state == PricingState.FAILED)
            )
        ).all()
        for row in rows:
            row.pricing_state = PricingState.PENDING
        return len(rows)


CREDITED_AMOUNTS = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)
"""The OCPI CDR fields a credit CDR negates."""


def _negate(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (_negate(v) if k in ("excl_vat", "incl_vat") else v) for k, v in value.items()}
    if isinstance(value, int | float | Decimal):
        return -value
    return value


def credit_for(original: Cdr, session_uid: str, *, now: datetime) -> Cdr:
    """The credit CDR of ``original``: the same CDR with negated amounts, referencing it, billed to whom the
    original is (its recorded fleet, driver and vehicle, or none recorded when it has none) (pure)."""
    credit_uid = cdr_uid_for(session_uid, original.revision, True)
    data = dict(original.data)
    for key in CREDITED_AMOUNTS:
        if key in data:
            data[key] = _negate(data[key])
    data.update(
        id=credit_uid, credit=True, credit_reference_id=original.cdr_uid, last_updated=format_rfc3339(now)
    )
    return Cdr(
        cdr_uid=credit_uid,
        session_id=original.session_id,
        revision=original.revision,
        is_credit=True,
        credit_of=original.id,
        cpo_id=original.cpo_id,
        emsp_id=original.emsp_id,
        location_id=original.location_id,
        token_id=original.token_id,
        fleet_id=original.fleet_id,
        driver_name=original.driver_name,
        vehicle=original.vehicle,
        holder_recorded=bool(original.holder_recorded),
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


async def issue_correction(
    db_session: AsyncSession,
    original: Cdr,
    fresh: Cdr,
    charging_session: ChargingSession,
    *,
    now: datetime,
    hooks: Sequence[CdrHook],
) -> Cdr:
    """Add the credit of ``original`` and ``fresh`` (its next revision) in ``db_session``'s transaction and run
    the hooks for both, credit first; returns the credit."""
    credit = credit_for(original, charging_session.session_uid, now=now)
    db_session.add(credit)
    db_session.add(fresh)
    await db_session.flush()
    for hook in hooks:
        await hook(db_session, credit)
        await hook(db_session, fresh)
    return credit


async def correct_cdr(db: Database, cdr_uid: str, hooks: Sequence[CdrHook]) -> tuple[Cdr, Cdr]:
    """Credit ``cdr_uid`` and re-rate its session with the tariff versions stored now: (credit, new CDR).

    By the publication rule (:func:`tariffs.tariff_versions.effective_from`) no version stored after the
    session can cover it, so without new session data the new CDR has the original's total. ``hooks`` is
    required so that no caller forgets the deliveries."""
    async with db.session() as db_session:
        original = await db_session.scalar(
            select(Cdr).where(Cdr.cdr_uid == cdr_uid, Cdr.is_credit.is_(False))
        )
        if original is None:
            raise RatingError(f"unknown CDR {cdr_uid}")
        already = await db_session.scalar(select(Cdr.id).where(Cdr.credit_of == original.id))
        if already is not None:
            raise RatingError(f"CDR {cdr_uid} was already credited; correct its latest revision instead")
        charging_session = await db_session.get(ChargingSession, original.session_id)
        if charging_session is None:
            raise RatingError(f"CDR {cdr_uid} has no charging session")
        now = utcnow()
        fresh, _ = await build_cdr(
            db_session, charging_session, now=now, revision=original.revision + 1, previous=original
        )
        credit = await issue_correction(db_session, original, fresh, charging_session, now=now, hooks=hooks)
    metrics.cdrs_created("credit")
    metrics.cdrs_created("correction")
    return credit, fresh
