"""OCPI 2.2.1 objects built from the hub's rows: what the Sender interfaces serve and the pushes send.

* Location: the stored OCPI ``data`` with each EVSE's live ``status`` (kept by the gateway in ``evses``).
* Session: built from the session's columns (status, kWh, times, token, EVSE) with its ``data`` (charging
  periods, costs...) laid over; charging periods are derived from the meter values when ``data`` has none.
  Only the spec's Session properties (:data:`SESSION_FIELDS`) are sent, never the hub's bookkeeping in ``data``.
* CDR and Tariff: the stored OCPI ``data`` (immutable CDR, versioned tariff).

Every object is projected onto the spec's properties (:func:`ocpi.spec_fields.spec_only`), nested objects
included: fields an import kept that OCPI does not have never leave the hub (issue 13).

The ``*_object`` functions of loaded rows are pure; :func:`load_location` and :func:`session_object` (the
session's token, location, EVSE, connector and meter values) read the database.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from kernel.domain.cdr_token import cdr_token
from kernel.meter_reading import ENERGY_REGISTER, SIGNED_UNIT, cumulative_series, interval_deltas
from kernel.models import (
    EVSE,
    Cdr,
    ChargingSession,
    Connector,
    Location,
    MeterValue,
    Party,
    TariffVersion,
    Token,
)
from kernel.timeutil import format_rfc3339
from ocpi.spec_fields import SPEC_OBJECTS, spec_only


def _ts(value: datetime | None) -> str | None:
    return format_rfc3339(value) if value is not None else None


def _num(value: Decimal | None, places: int = 4) -> Decimal | None:
    """A quantity for OCPI (kWh) to ``places`` decimals; stays a Decimal, written as an exact JSON number
    (:mod:`kernel.jsonutil`)."""
    if value is None:
        return None
    return round(Decimal(value), places)


def connector_object(conn: Connector, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """The connector's columns over its stored fields (``stored``, from its EVSE's data: the imported
    connector, e.g. ``terms_and_conditions``, which has no column)."""
    obj = {k: v for k, v in (stored or {}).items() if k not in ("max_electric_power", "tariff_ids")}
    obj.update(
        {
            "id": conn.connector_id,
            "standard": conn.standard,
            "format": conn.format,
            "power_type": conn.power_type,
            "max_voltage": conn.max_voltage,
            "max_amperage": conn.max_amperage,
            "last_updated": _ts(conn.last_updated),
        }
    )
    if conn.max_electric_power is not None:
        obj["max_electric_power"] = conn.max_electric_power
    if conn.tariff_ids:
        obj["tariff_ids"] = list(conn.tariff_ids)
    return spec_only(obj, "Connector")


def evse_object(evse: EVSE) -> dict[str, Any]:
    obj = dict(evse.data or {})
    stored_connectors = {str(c.get("id")): c for c in obj.get("connectors", []) if isinstance(c, dict)}
    obj["uid"] = evse.uid
    if evse.evse_id:
        obj["evse_id"] = evse.evse_id
    obj["status"] = evse.status
    if evse.capabilities:
        obj["capabilities"] = list(evse.capabilities)
    if evse.physical_reference:
        obj["physical_reference"] = evse.physical_reference
    if evse.floor_level:
        obj["floor_level"] = evse.floor_level
    if evse.connectors:
        obj["connectors"] = [
            connector_object(c, stored_connectors.get(c.connector_id)) for c in evse.connectors
        ]
    stamps = [evse.last_updated, *(c.last_updated for c in evse.connectors)]
    obj["last_updated"] = _ts(max(stamps))
    return spec_only(obj, "EVSE")


def location_last_updated(loc: Location) -> datetime:
    stamps = [loc.last_updated]
    for evse in loc.evses:
        stamps.append(evse.last_updated)
        stamps.extend(c.last_updated for c in evse.connectors)
    return max(stamps)


def location_object(loc: Location, cpo: Party) -> dict[str, Any]:
    """Location with live EVSE status. EVSEs REMOVED stay listed with that status, as the spec wants."""
    obj = dict(loc.data or {})
    obj.update(
        {
            "country_code": cpo.country_code,
            "party_id": cpo.party_id,
            "id": loc.ocpi_id,
            "publish": loc.publish,
            "address": loc.address,
            "city": loc.city,
            "country": loc.country,
            "coordinates": {"latitude": loc.latitude, "longitude": loc.longitude},
            "time_zone": loc.time_zone,
            "last_updated": _ts(location_last_updated(loc)),
        }
    )
    if loc.name is not None:
        obj["name"] = loc.name
    if loc.postal_code is not None:
        obj["postal_code"] = loc.postal_code
    if loc.evses:
        obj["evses"] = [evse_object(e) for e in loc.evses]
    return spec_only(obj, "Location")


async def load_location(db_session: AsyncSession, location_pk: int) -> Location | None:
    """The location with its EVSEs and connectors, fresh from the database (what :func:`location_object` needs)."""
    return await db_session.scalar(
        select(Location)
        .where(Location.id == location_pk)
        .options(selectinload(Location.evses).selectinload(EVSE.connectors))
        .execution_options(populate_existing=True)
    )


async def derived_periods(db_session: AsyncSession, cs: ChargingSession) -> list[dict[str, Any]]:
    """One ChargingPeriod per interval between register samples: ENERGY (kWh charged in it), from the
    session's cumulative series (:mod:`kernel.meter_reading`: never negative, a reset or a signature is no
    energy, a Begin reading is the baseline at the start); an interval without energy is left out."""
    rows = (
        await db_session.scalars(
            select(MeterValue)
            .where(MeterValue.session_id == cs.id, MeterValue.measurand == ENERGY_REGISTER)
            .order_by(MeterValue.timestamp)
        )
    ).all()
    if not any(row.unit != SIGNED_UNIT for row in rows):
        return []
    series = cumulative_series(rows, cs.start_time, cs.end_time, cs.meter_start_wh, cs.energy_wh)
    return [
        {"start_date_time": _ts(start), "dimensions": [{"type": "ENERGY", "volume": _num(wh / 1000)}]}
        for start, _end, wh in interval_deltas(series)
        if wh > 0
    ]


SESSION_FIELDS = frozenset(SPEC_OBJECTS["Session"])
"""The properties of the OCPI 2.2.1 Session object (mod_sessions, "Session Object", as
:data:`ocpi.spec_fields.SPEC_OBJECTS` holds them): nothing else is sent."""

DATA_FIELDS = ("charging_periods", "total_cost", "authorization_reference", "meter_id")
"""Session properties the session's ``data`` supplies; its other keys (``remote_start_id``, ``reservation_id``,
``seq_nos``, ``clock_suspect``, ...) are the hub's own bookkeeping and never leave it."""


async def session_object(db_session: AsyncSession, cs: ChargingSession, cpo: Party) -> dict[str, Any]:
    token = await db_session.get(Token, cs.token_id) if cs.token_id else None
    location = await db_session.get(Location, cs.location_id) if cs.location_id else None
    evse = await db_session.get(EVSE, cs.evse_pk) if cs.evse_pk else None
    connector = await db_session.get(Connector, cs.connector_pk) if cs.connector_pk else None
    data = dict(cs.data or {})
    obj: dict[str, Any] = {
        "country_code": cpo.country_code,
        "party_id": cpo.party_id,
        "id": cs.session_uid,
        "start_date_time": _ts(cs.start_time),
        "kwh": _num(cs.energy_wh / 1000) or 0,
        "cdr_token": cdr_token(token, cs),
        "auth_method": cs.auth_method,
        "location_id": location.ocpi_id if location else data.get("location_id", ""),
        "evse_uid": evse.uid if evse else data.get("evse_uid", ""),
        "connector_id": connector.connector_id if connector else data.get("connector_id", "1"),
        "currency": cs.currency or data.get("currency") or "EUR",
        "status": str(cs.status),
        "last_updated": _ts(cs.last_updated),
    }
    if cs.end_time is not None:
        obj["end_date_time"] = _ts(cs.end_time)
    for key, value in data.items():
        if key in DATA_FIELDS or (key in SESSION_FIELDS and key not in obj):
            obj[key] = value
    if "charging_periods" not in data:
        periods = await derived_periods(db_session, cs)
        if periods:
            obj["charging_periods"] = periods
    return spec_only(obj, "Session")


def cdr_object(cdr: Cdr) -> dict[str, Any]:
    obj = dict(cdr.data or {})
    obj.setdefault("id", cdr.cdr_uid)
    obj.setdefault("last_updated", _ts(cdr.last_updated))
    return spec_only(obj, "CDR")


def tariff_object(tv: TariffVersion, cpo: Party, applies_from: datetime | None = None) -> dict[str, Any]:
    """The stored version as an OCPI Tariff; ``start_date_time`` says from when it applies
    (``applies_from``, :func:`tariffs.published_start`) when that is later than the stored start."""
    obj = dict(tv.data or {})
    obj.setdefault("country_code", cpo.country_code)
    obj.setdefault("party_id", cpo.party_id)
    obj.setdefault("id", tv.tariff_id)
    obj.setdefault("currency", tv.currency)
    if tv.start_date_time is not None:
        obj.setdefault("start_date_time", _ts(tv.start_date_time))
    if applies_from is not None and (tv.end_date_time is None or applies_from < tv.end_date_time):
        obj["start_date_time"] = _ts(applies_from)
    if tv.end_date_time is not None:
        obj.setdefault("end_date_time", _ts(tv.end_date_time))
    obj.setdefault("last_updated", _ts(tv.last_updated))
    return spec_only(obj, "Tariff")


def token_object(t: Token) -> dict[str, Any]:
    """The stored token as an OCPI 2.2.1 Token (the Tokens Receiver GET, the tokens Sender list and push)."""
    obj = dict(t.data or {})
    obj.update(
        {
            "country_code": t.country_code,
            "party_id": t.party_id,
            "uid": t.uid,
            "type": t.type,
            "contract_id": t.contract_id,
            "issuer": t.issuer,
            "valid": t.valid,
            "whitelist": t.whitelist,
            "last_updated": format_rfc3339(t.last_updated),
        }
    )
    if t.visual_number:
        obj["visual_number"] = t.visual_number
    if t.language:
        obj["language"] = t.language
    return obj
