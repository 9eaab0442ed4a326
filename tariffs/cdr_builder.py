"""Building one CDR from one ended charging session: load, derive, price, assemble.

Four steps with typed hand-offs, so each can be read (and tested) on its own:

1. :func:`load_inputs` (the only database step): the session's location, CPO, EVSE, connector, token, the
   stored versions of its tariff and its meter values, as :class:`RatingInputs`.
2. :func:`derive_periods` (pure): the meter values as a cumulative energy series, cut into charging periods at
   every price boundary of the tariff versions, as :class:`SessionPeriods`.
3. :func:`price_periods` (pure): the pricing engine (:func:`tariffs.core.engine.price_session`).
4. :func:`assemble_cdr` (pure, "now" passed in): the OCPI 2.2.1 CDR object and its row, with whom it is
   billed to recorded on it (:mod:`kernel.domain.cdr_holder`: the token's fleet, driver and vehicle now, or
   for a correction of the same token its previous revision's, so a token moved since is not followed).

:func:`build_cdr` runs the four; :mod:`tariffs.rating` decides when, and writes the row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.domain.cdr_holder import Holder, holder_of, recorded_holder, session_holder, token_holder
from kernel.domain.cdr_token import cdr_token
from kernel.meter_reading import CURRENT, ENERGY_REGISTER, POWER, MeterRow, cumulative_series
from kernel.models import (
    EVSE,
    Cdr,
    ChargingSession,
    Connector,
    Location,
    MeterValue,
    Party,
    SessionStatus,
    Token,
)
from kernel.timeutil import format_rfc3339
from tariffs.core.charging_periods import Period
from tariffs.core.compiled_tariff import CompiledTariff, compile_tariff
from tariffs.core.engine import price_session
from tariffs.core.meter_periods import MeterSample, periods_from_meter_values
from tariffs.core.pricing_result import PricingResult
from tariffs.core.render import cdr_fields, cdr_tariffs, explanation
from tariffs.core.tariff_json import to_jsonable
from tariffs.price_lock import apply_price_lock
from tariffs.reservations import add_reservation_periods
from tariffs.signed_data import session_signed_data
from tariffs.tariff_versions import DEFAULT_TARIFF_ID, StoredTariff, versions_for_connector

CDR_NAMESPACE = uuid.UUID("6f1d3c2a-8f7e-4c1b-9a55-0e7d2f4b9c10")


class RatingError(RuntimeError):
    """A session that cannot be priced (no tariff, no location ...)."""


def cdr_uid_for(session_uid: str, revision: int, credit: bool) -> str:
    """Deterministic CDR id (36 chars, within OCPI's 39): the same session always yields the same id."""
    return str(uuid.uuid5(CDR_NAMESPACE, f"{session_uid}:{revision}:{'credit' if credit else 'cdr'}"))


@dataclass(frozen=True, slots=True)
class RatingInputs:
    """Step 1's output: everything the CDR of one ended session is made from, as stored."""

    charging_session: ChargingSession
    end_time: datetime  # the session's end (it has ended)
    location: Location
    cpo: Party | None
    evse: EVSE | None
    connector: Connector | None
    token: Token | None
    tariff_id: str  # the first tariff id of ``stored_versions`` (a connector's, or the CPO's DEFAULT)
    stored_versions: list[StoredTariff]  # the versions of all the connector's tariffs, each id's oldest first
    meter_rows: Sequence[MeterRow]  # energy register, power and current samples, in primary key order
    signed_data: dict[str, Any] | None = None  # OCPI SignedData (tariffs.signed_data); None: none/invalid


@dataclass(frozen=True, slots=True)
class SessionPeriods:
    """Step 2's output: the session as the pricing engine takes it."""

    versions: list[CompiledTariff]
    periods: list[Period]  # already cut at every price boundary of ``versions``
    start: datetime
    end: datetime
    time_zone: str  # the location's IANA zone


async def build_cdr(
    db_session: AsyncSession,
    charging_session: ChargingSession,
    *,
    now: datetime,
    revision: int = 0,
    previous: Cdr | None = None,
) -> tuple[Cdr, PricingResult]:
    """Price ``charging_session`` and build its CDR row (not yet added to ``db_session``); ``previous`` is the
    revision a correction replaces (its holder is kept: :func:`holder_for`). The pure steps (derive, price,
    assemble) run in a worker thread (``asyncio.to_thread``), so one heavy session never holds the event loop
    the gateway shares (issue 15); :mod:`tariffs.rating` bounds their work before loading."""
    inputs = await load_inputs(db_session, charging_session)
    holder = holder_for(inputs.token, previous, charging_session)
    # the pure steps in a worker thread: the event loop (the chargers' websockets) keeps running meanwhile
    derived = await asyncio.to_thread(derive_periods, inputs)
    # T7: the reservation time of the session's reservation before its own periods (alone when it expired)
    periods = await add_reservation_periods(
        db_session, charging_session, derived.periods, derived.versions, derived.time_zone
    )
    result = await asyncio.to_thread(price_periods, replace(derived, periods=periods))
    cdr = await asyncio.to_thread(assemble_cdr, inputs, result, revision=revision, now=now, holder=holder)
    return cdr, result


def holder_for(token: Token | None, previous: Cdr | None, session: ChargingSession | None = None) -> Holder:
    """Whom the CDR is billed to: for a correction of the same token (``previous``, the revision it
    replaces), the ones ``previous`` is billed to (the token may have moved since); else the fleet, driver and
    vehicle the gateway recorded on the session when it first knew that token, at its start
    (:func:`kernel.domain.cdr_holder.session_holder`); else (a session without them: started without a known
    token, or from before they were recorded) the token's now. A correction that brings another token: that
    token's, the same way."""
    if previous is not None and token is not None and previous.token_id == token.id:
        return holder_of(previous, token)
    recorded = session_holder(session, token)
    return recorded if recorded is not None else token_holder(token)


# ---- 1. load


async def load_inputs(db_session: AsyncSession, charging_session: ChargingSession) -> RatingInputs:
    """Read what the CDR needs; :class:`RatingError` when the session has not ended or has no location/tariff."""
    end_time = charging_session.end_time
    if end_time is None:
        raise RatingError(f"session {charging_session.session_uid} has not ended")
    location = (
        await db_session.get(Location, charging_session.location_id) if charging_session.location_id else None
    )
    if location is None:
        raise RatingError(f"session {charging_session.session_uid} has no location")
    cpo = await db_session.get(Party, charging_session.cpo_id)
    evse = await db_session.get(EVSE, charging_session.evse_pk) if charging_session.evse_pk else None
    connector = await session_connector(db_session, charging_session)
    token = await db_session.get(Token, charging_session.token_id) if charging_session.token_id else None
    tariff_id, stored = await _tariff_for(db_session, charging_session)
    # plain rows of the columns the series reads, not ORM objects: loading is on the event loop
    rows = (
        await db_session.execute(
            select(
                MeterValue.timestamp,
                MeterValue.measurand,
                MeterValue.phase,
                MeterValue.unit,
                MeterValue.value,
                MeterValue.context,
            )
            .where(
                MeterValue.session_id == charging_session.id,
                MeterValue.measurand.in_((ENERGY_REGISTER, POWER, CURRENT)),
            )
            .order_by(*inspect(MeterValue).primary_key)
        )
    ).all()
    signed = await session_signed_data(db_session, charging_session)  # also stores its verification
    return RatingInputs(
        charging_session, end_time, location, cpo, evse, connector, token, tariff_id, stored, rows,
        signed.cdr_object,
    )  # fmt: skip


async def session_connector(db_session: AsyncSession, charging_session: ChargingSession) -> Connector | None:
    """The session's connector, else its EVSE's first connector, else None."""
    if charging_session.connector_pk:
        connector = await db_session.get(Connector, charging_session.connector_pk)
        if connector is not None:
            return connector
    if charging_session.evse_pk is None:
        return None
    return await db_session.scalar(
        select(Connector).where(Connector.evse_pk == charging_session.evse_pk).order_by(Connector.id)
    )


async def _tariff_for(
    db_session: AsyncSession, charging_session: ChargingSession
) -> tuple[str, list[StoredTariff]]:
    """The stored versions of all the connector's tariffs, else of the CPO's ``DEFAULT``
    (:func:`tariffs.tariff_versions.versions_for_connector`), with the first id they belong to."""
    tariff_ids: list[str] = []
    if charging_session.connector_pk is not None:
        connector = await db_session.get(Connector, charging_session.connector_pk)
        if connector is not None:
            tariff_ids = list(connector.tariff_ids or [])
    elif charging_session.evse_pk is not None:
        first = await db_session.scalar(
            select(Connector)
            .where(Connector.evse_pk == charging_session.evse_pk)
            .order_by(Connector.id)
            .limit(1)
        )
        tariff_ids = list(first.tariff_ids or []) if first else []
    versions = await versions_for_connector(db_session, charging_session.cpo_id, tariff_ids)
    if versions:  # T8: the CPO's or tariff's price lock keeps the version valid at the start
        versions = await apply_price_lock(
            db_session, charging_session.cpo_id, versions, charging_session.start_time
        )
        return versions[0].tariff_id, versions
    raise RatingError(
        f"no tariff for session {charging_session.session_uid}: connector tariff_ids {tariff_ids} and no "
        f"'{DEFAULT_TARIFF_ID}' tariff of the CPO"
    )


# ---- 2. derive


def derive_periods(inputs: RatingInputs) -> SessionPeriods:
    """The session's meter series as charging periods cut at every price boundary of its tariff versions."""
    charging_session = inputs.charging_session
    samples = meter_samples(inputs.meter_rows, charging_session)
    compiled = [compile_tariff(v.tariff) for v in inputs.stored_versions]
    time_zone = inputs.location.time_zone
    periods = periods_from_meter_values(
        samples, charging_session.start_time, inputs.end_time, compiled, time_zone
    )
    return SessionPeriods(compiled, periods, charging_session.start_time, inputs.end_time, time_zone)


def meter_samples(rows: Sequence[MeterRow], charging_session: ChargingSession) -> list[MeterSample]:
    """Cumulative energy since the session start, ending exactly at the session's energy, with power and
    current where measured: :func:`kernel.meter_reading.cumulative_series` (a signature is never a reading,
    a Begin reading is the baseline at the start, a reset continues from the last value; the gateway's
    ``energy_wh`` is the total, the series only gives it its shape)."""
    return [
        MeterSample(*point)
        for point in cumulative_series(
            rows,
            charging_session.start_time,
            charging_session.end_time,
            charging_session.meter_start_wh,
            charging_session.energy_wh,
        )
    ]


# ---- 3. price


def price_periods(derived: SessionPeriods) -> PricingResult:
    """The engine's price of the derived periods (already cut, so ``precut``)."""
    return price_session(
        derived.versions, derived.periods, derived.start, derived.end, derived.time_zone, precut=True
    )


# ---- 4. assemble


def assemble_cdr(
    inputs: RatingInputs, result: PricingResult, *, revision: int, now: datetime, holder: Holder | None = None
) -> Cdr:
    """The CDR row of revision ``revision``: the OCPI CDR object (``data``), the columns, the explanation;
    billed to ``holder`` (default: the token's fleet, driver and vehicle now)."""
    charging_session, stored, token = inputs.charging_session, inputs.stored_versions, inputs.token
    uid = cdr_uid_for(charging_session.session_uid, revision, False)
    start = min([result.session_start, *(p.start for p in result.periods[:1])])
    data: dict[str, Any] = {
        "country_code": inputs.cpo.country_code if inputs.cpo else "",
        "party_id": inputs.cpo.party_id if inputs.cpo else "",
        "id": uid,
        # OCPI 2.2.1: omitted only for "the result of a reservation that never became a charging session"
        **(
            {}
            if charging_session.status == SessionStatus.RESERVATION
            else {"session_id": charging_session.session_uid}
        ),
        "cdr_token": cdr_token(token, charging_session),
        "auth_method": charging_session.auth_method,
        **{k: v for k, v in (charging_session.data or {}).items() if k == "authorization_reference" and v},
        "cdr_location": _location_object(inputs.location, inputs.evse, inputs.connector),
        "tariffs": _tariffs_used(stored, result),
        **to_jsonable(cdr_fields(result), decimals_as="keep"),
        "start_date_time": format_rfc3339(start),  # a reservation before the session: its start (T7)
        "home_charging_compensation": False,
        "last_updated": format_rfc3339(now),
    }
    signed = inputs.signed_data
    if signed:
        data["signed_data"] = signed
    return Cdr(
        cdr_uid=uid,
        session_id=charging_session.id,
        revision=revision,
        is_credit=False,
        cpo_id=charging_session.cpo_id,
        emsp_id=token.emsp_id if token else None,
        location_id=inputs.location.id,
        token_id=token.id if token else None,
        **recorded_holder(holder if holder is not None else token_holder(token)),
        currency=result.currency,
        start_date_time=start,
        end_date_time=result.session_end,
        total_energy_kwh=result.total_energy,
        total_time_hours=result.total_time,
        total_cost_excl_vat=result.total_cost.excl_vat,
        total_cost_incl_vat=result.total_cost.incl_vat,
        tariff_versions=[
            {
                "tariff_id": tid,
                "version": label,
                "row_ids": [v.row_id for v in stored if (v.tariff.id, v.tariff.version) == (tid, label)],
            }
            for tid, label in result.tariffs_used
        ]
        or [{"tariff_id": inputs.tariff_id, "version": None, "row_ids": []}],
        explanation=to_jsonable(explanation(result), decimals_as="string"),
        data=data,
        created_at=now,
        last_updated=now,
    )


def _tariffs_used(stored: Sequence[StoredTariff], result: PricingResult) -> list[Any]:
    """The OCPI tariff objects of the versions the engine chose (:func:`tariffs.core.render.cdr_tariffs`), so
    the CDR re-prices from its own content."""
    return cdr_tariffs([v.tariff for v in stored], result)


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
