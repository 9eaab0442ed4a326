"""OCPI commands on top of the gateway's generic command API (``Gateway.send(identity, action, payload)``
with ``cpo_gateway.commands.build(command, version, params)``): finds the charger and its OCPP EVSE number
for an OCPI location/EVSE, sends the OCPP call, and maps the charger's answer to a CommandResultType.
A START_SESSION is recorded (``ocpi_authorizations``, source ``command``) before the charger is asked, so the
session it opens is marked ``auth_method: COMMAND``. A token uid longer than OCPP 1.6's 20-character idTag
reaches a 1.6 charger as its mapped form (:mod:`kernel.id_tags`); 2.0.1 takes the uid as it is.

Which charger serves a location or EVSE is decided in one place, :func:`serving_charger` (also used for the
reservation row, :mod:`ocpi.reservation_store`); CANCEL_RESERVATION goes to the charger its row names."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway import build_call
from kernel.db.engine import Database
from kernel.id_tags import id_tag_for
from kernel.models import EVSE, ChargePoint, ChargePointEvse, ChargingSession, Location, Reservation
from kernel.models.roaming import OcpiAuthorization
from kernel.timeutil import format_rfc3339, parse_datetime, utcnow

log = logging.getLogger(__name__)

_START_STOP = {"ACCEPTED": "ACCEPTED", "REJECTED": "REJECTED"}
_UNLOCK = {
    "UNLOCKED": "ACCEPTED",
    "UNLOCKFAILED": "FAILED",
    "ONGOINGAUTHORIZEDTRANSACTION": "REJECTED",
    "UNKNOWNCONNECTOR": "REJECTED",
    "NOTSUPPORTED": "NOT_SUPPORTED",
}
_RESERVE = {
    "ACCEPTED": "ACCEPTED",
    "FAULTED": "EVSE_INOPERATIVE",
    "OCCUPIED": "EVSE_OCCUPIED",
    "REJECTED": "REJECTED",
    "UNAVAILABLE": "EVSE_INOPERATIVE",
}
_CANCEL = {"ACCEPTED": "CANCELED_RESERVATION", "REJECTED": "UNKNOWN_RESERVATION"}


def reservation_number(reservation_id: str) -> int:
    """OCPP reservation ids are integers; OCPI's are strings (numeric ones are kept)."""
    return (
        int(reservation_id) if reservation_id.isdigit() else zlib.crc32(reservation_id.encode()) & 0x7FFFFFFF
    )


@dataclass(frozen=True)
class ServingCharger:
    """The charger a command for a location/EVSE goes to, with the OCPP number of the EVSE."""

    charge_point_id: int
    identity: str
    ocpp_version: str
    ocpp_evse_id: int
    evse_pk: int


async def serving_charger(
    db_session: AsyncSession, location_pk: int, evse_uid: str | None
) -> ServingCharger | None:
    """The charger serving ``evse_uid`` of the location, or for the whole location (no ``evse_uid``) its
    first charger: the lowest charger pk, and of its EVSEs there the lowest OCPP number. An explicit order, so
    every database (and every caller: the OCPP call and the reservation row) makes the same choice."""
    query = (
        select(ChargePoint.id, ChargePoint.identity, ChargePoint.ocpp_version)
        .add_columns(ChargePointEvse.ocpp_evse_id, EVSE.id)
        .join(ChargePointEvse, ChargePointEvse.charge_point_id == ChargePoint.id)
        .join(EVSE, EVSE.id == ChargePointEvse.evse_pk)
        .where(EVSE.location_id == location_pk)
        .order_by(ChargePoint.id, ChargePointEvse.ocpp_evse_id, EVSE.id)
        .limit(1)
    )
    if evse_uid is not None:
        query = query.where(EVSE.uid == evse_uid)
    row = (await db_session.execute(query)).first()
    if row is None:
        return None
    cp_pk, identity, version, ocpp_evse, evse_pk = row
    return ServingCharger(cp_pk, identity, str(version), ocpp_evse, evse_pk)


def _status(answer: Any, table: dict[str, str]) -> str:
    status = str((answer or {}).get("status", "")).upper() if isinstance(answer, dict) else ""
    return table.get(status, "FAILED")


# ---------------------------------------------------------------------------------------------- smart charging
_PROFILE_SET = {"ACCEPTED": "ACCEPTED", "REJECTED": "REJECTED", "NOTSUPPORTED": "REJECTED"}
_PROFILE_CLEAR = {"ACCEPTED": "ACCEPTED", "UNKNOWN": "UNKNOWN"}


def profile_number(session_uid: str) -> int:
    return zlib.crc32(("ocpi:" + session_uid).encode()) & 0x7FFFFFFF


def ocpp_profile(
    version: str, profile: dict[str, Any], profile_id: int, transaction_id: str
) -> dict[str, Any]:
    """An OCPI ChargingProfile as the charger's TxProfile (1.6 csChargingProfiles / 2.0.1 chargingProfile)."""
    schedule: dict[str, Any] = {
        "chargingRateUnit": profile["charging_rate_unit"],
        "chargingSchedulePeriod": [
            {"startPeriod": int(p["start_period"]), "limit": p["limit"]}
            for p in profile.get("charging_profile_period") or []
        ],
    }
    if profile.get("duration") is not None:
        schedule["duration"] = int(profile["duration"])
    if profile.get("start_date_time"):
        # OCPP's dateTime is RFC 3339 with an offset; OCPI's may omit it (then UTC)
        schedule["startSchedule"] = format_rfc3339(parse_datetime(str(profile["start_date_time"])))
    if profile.get("min_charging_rate") is not None:
        schedule["minChargingRate"] = profile["min_charging_rate"]
    kind = "Absolute" if profile.get("start_date_time") else "Relative"
    if version == "1.6":
        return {
            "chargingProfileId": profile_id,
            "transactionId": int(transaction_id) if transaction_id.isdigit() else 0,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": kind,
            "chargingSchedule": schedule,
        }
    return {
        "id": profile_id,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": kind,
        "transactionId": transaction_id,
        "chargingSchedule": [{"id": profile_id, **schedule}],
    }


def _charger_tag(version: str, id_tag: str, token: dict[str, Any]) -> str:
    """The id tag the charger gets for the OCPI token: mapped to 20 characters for a long uid on 1.6."""
    return id_tag_for(version, str(token.get("country_code", "")), str(token.get("party_id", "")), id_tag)


def _schedule_start(given: Any, asked_at: datetime) -> str:
    """The ActiveChargingProfile's ``start_date_time`` (a required OCPI DateTime, UTC) from the charger's
    ``scheduleStart`` in any offset. Without one (optional in OCPP 1.6) it is the time of the request: the
    charger calculates the composite schedule "from the moment the request PDU is received: Time X, up to X +
    Duration" (OCPP 1.6, 5.7 Get Composite Schedule)."""
    if isinstance(given, str) and given:
        try:
            return format_rfc3339(parse_datetime(given))
        except ValueError:
            log.warning("charger's scheduleStart %r is not a date-time: the request's time is used", given)
    return format_rfc3339(asked_at)


class _SessionTarget:
    def __init__(self, identity: str, version: str, evse: int, tx: str) -> None:
        self.identity, self.version, self.evse, self.tx = identity, version, evse, tx


async def _session_target(db: Database, cpo_id: int, session_uid: str) -> _SessionTarget | None:
    async with db.session() as db_session:
        row = (
            await db_session.execute(
                select(ChargingSession, ChargePoint.identity, ChargePoint.ocpp_version)
                .join(ChargePoint, ChargePoint.id == ChargingSession.charge_point_id)
                .where(ChargingSession.session_uid == session_uid, ChargingSession.cpo_id == cpo_id)
            )
        ).first()
        if row is None:
            return None
        cs, identity, version = row
        evse = cs.ocpp_evse_id or cs.ocpp_connector_id
        if evse is None and cs.evse_pk is not None:
            evse = await db_session.scalar(
                select(ChargePointEvse.ocpp_evse_id).where(ChargePointEvse.evse_pk == cs.evse_pk)
            )
        return _SessionTarget(identity, str(version), int(evse or 1), cs.transaction_id)


class SmartChargingMixin:
    """ChargingProfiles on top of the gateway: TxProfile set/clear, GetCompositeSchedule."""

    db: Database
    gateway: Any

    async def _call(self, identity: str, version: str, command: str, params: dict[str, Any]) -> Any:

        action, payload = build_call(command, version, params)
        return await self.gateway.send(identity, action, payload)

    async def set_charging_profile(self, *, cpo_id: int, session_uid: str, profile: dict[str, Any]) -> str:
        target = await _session_target(self.db, cpo_id, session_uid)
        if target is None:
            return "UNKNOWN"
        body = ocpp_profile(target.version, profile, profile_number(session_uid), target.tx)
        answer = await self._call(
            target.identity, target.version, "set-charging-profile", {"evse_id": target.evse, "profile": body}
        )
        return _status(answer, _PROFILE_SET) if _status(answer, _PROFILE_SET) != "FAILED" else "REJECTED"

    async def clear_charging_profile(self, *, cpo_id: int, session_uid: str) -> str:
        target = await _session_target(self.db, cpo_id, session_uid)
        if target is None:
            return "UNKNOWN"
        answer = await self._call(
            target.identity, target.version, "clear-charging-profile", {"id": profile_number(session_uid)}
        )
        result = _status(answer, _PROFILE_CLEAR)
        return result if result != "FAILED" else "REJECTED"

    async def get_active_charging_profile(self, *, cpo_id: int, session_uid: str, duration: int) -> dict:
        target = await _session_target(self.db, cpo_id, session_uid)
        if target is None:
            return {"result": "UNKNOWN"}
        if target.version == "1.6":
            payload: dict[str, Any] = {"connectorId": target.evse, "duration": duration}
        else:
            payload = {"evseId": target.evse, "duration": duration}
        asked_at = utcnow()
        answer = await self.gateway.send(target.identity, "GetCompositeSchedule", payload)
        if not isinstance(answer, dict) or str(answer.get("status", "")).upper() != "ACCEPTED":
            return {"result": "REJECTED"}
        schedule = answer.get("chargingSchedule") or answer.get("schedule") or {}
        start = answer.get("scheduleStart") or schedule.get("scheduleStart") or schedule.get("startSchedule")
        profile = {
            "charging_rate_unit": schedule.get("chargingRateUnit", "W"),
            "charging_profile_period": [
                {"start_period": p.get("startPeriod", 0), "limit": p.get("limit")}
                for p in schedule.get("chargingSchedulePeriod", [])
            ],
        }
        if schedule.get("duration") is not None:
            profile["duration"] = schedule["duration"]
        start_date_time = _schedule_start(start, asked_at)
        return {
            "result": "ACCEPTED",
            "profile": {"start_date_time": start_date_time, "charging_profile": profile},
        }


class OcppCommandAdapter(SmartChargingMixin):
    """Implements :class:`ocpi.command_runner.GatewayCommands` with the gateway's ``send``."""

    def __init__(self, gateway: Any, db: Database) -> None:
        self.gateway = gateway
        self.db = db

    async def _target(
        self, cpo_id: int, location_id: str, evse_uid: str | None
    ) -> tuple[str, str, int | None]:
        """(charger identity, OCPP version, OCPP EVSE number) for an OCPI location/EVSE."""
        async with self.db.session() as db_session:
            loc_pk = await db_session.scalar(
                select(Location.id).where(Location.cpo_id == cpo_id, Location.ocpi_id == location_id)
            )
            if loc_pk is None:
                raise LookupError(f"unknown location {location_id}")
            target = await serving_charger(db_session, loc_pk, evse_uid)
            if target is None:
                raise LookupError(f"no charger serves {location_id}/{evse_uid}")
            return target.identity, target.ocpp_version, target.ocpp_evse_id

    async def start_session(
        self, *, cpo_id: int, location_id: str, evse_uid: str | None, connector_id: str | None, id_tag: str,
        token: dict[str, Any], authorization_reference: str | None,
    ) -> str:  # fmt: skip
        identity, version, evse = await self._target(cpo_id, location_id, evse_uid)
        mark = (
            None
            if authorization_reference
            else await self._mark_command_start(cpo_id, location_id, evse_uid, id_tag, token)
        )
        tag = _charger_tag(version, id_tag, token)
        answer = await self._call(identity, version, "remote-start", {"id_tag": tag, "evse_id": evse})
        result = _status(answer, _START_STOP)
        if mark is not None and result != "ACCEPTED":
            async with self.db.session() as db_session:
                await db_session.execute(delete(OcpiAuthorization).where(OcpiAuthorization.id == mark))
        return result

    async def _mark_command_start(
        self, cpo_id: int, location_id: str, evse_uid: str | None, id_tag: str, token: dict[str, Any]
    ) -> int:
        """Record, before the charger is asked, that ``id_tag`` is started by an eMSP's START_SESSION here,
        so the session the charger then opens says ``auth_method: COMMAND`` (taken by
        :func:`ocpi.realtime_authorization.session_reference_hook`). A START_SESSION with an
        ``authorization_reference`` is recorded by the commands module already; this one has none (``""``)."""
        async with self.db.session() as db_session:
            loc_pk = await db_session.scalar(
                select(Location.id).where(Location.cpo_id == cpo_id, Location.ocpi_id == location_id)
            )
            row = OcpiAuthorization(
                token_uid=id_tag,
                token_type=str(token.get("type") or "RFID"),
                location_pk=loc_pk,
                evse_uid=evse_uid,
                authorization_reference="",
                source="command",
            )
            db_session.add(row)
            await db_session.flush()
            return row.id

    async def stop_session(self, *, cpo_id: int, session_uid: str) -> str:
        async with self.db.session() as db_session:
            row = (
                await db_session.execute(
                    select(ChargingSession.transaction_id, ChargePoint.identity, ChargePoint.ocpp_version)
                    .join(ChargePoint, ChargePoint.id == ChargingSession.charge_point_id)
                    .where(ChargingSession.session_uid == session_uid, ChargingSession.cpo_id == cpo_id)
                )
            ).first()
        if row is None:
            return "REJECTED"
        tx, identity, version = row
        answer = await self._call(identity, str(version), "remote-stop", {"transaction_id": tx})
        return _status(answer, _START_STOP)

    async def unlock_connector(
        self, *, cpo_id: int, location_id: str, evse_uid: str, connector_id: str
    ) -> str:
        identity, version, evse = await self._target(cpo_id, location_id, evse_uid)
        params = {"evse_id": evse, "connector_id": int(connector_id) if connector_id.isdigit() else 1}
        answer = await self._call(identity, version, "unlock-connector", params)
        return _status(answer, _UNLOCK)

    async def reserve_now(
        self, *, cpo_id: int, location_id: str, evse_uid: str | None, reservation_id: str, expiry_date: datetime,
        id_tag: str, token: dict[str, Any], authorization_reference: str | None,
    ) -> str:  # fmt: skip
        identity, version, evse = await self._target(cpo_id, location_id, evse_uid)
        params = {
            "reservation_id": reservation_number(reservation_id),
            "evse_id": evse or 0,
            "id_tag": _charger_tag(version, id_tag, token),
            "expiry": format_rfc3339(expiry_date),
        }
        return _status(await self._call(identity, version, "reserve-now", params), _RESERVE)

    async def cancel_reservation(self, *, cpo_id: int, reservation_id: str) -> str:
        """CancelReservation to the charger the reservation row names (``reservation_id`` is the number the
        charger got, the row's ``ocpp_reservation_id``); a number no reservation of the CPO has is
        ``UNKNOWN_RESERVATION`` without asking any charger."""
        if not reservation_id.isdigit() or int(reservation_id) > 0x7FFFFFFF:
            return "UNKNOWN_RESERVATION"
        async with self.db.session() as db_session:
            row = (
                await db_session.execute(
                    select(ChargePoint.identity, ChargePoint.ocpp_version)
                    .join(Reservation, Reservation.charge_point_id == ChargePoint.id)
                    .where(
                        Reservation.cpo_id == cpo_id,
                        Reservation.ocpp_reservation_id == int(reservation_id),
                    )
                    .order_by(Reservation.id)
                    .limit(1)
                )
            ).first()
        if row is None:
            return "UNKNOWN_RESERVATION"
        identity, version = row
        params = {"reservation_id": reservation_number(reservation_id)}
        return _status(await self._call(identity, str(version), "cancel-reservation", params), _CANCEL)
