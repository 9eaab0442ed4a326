"""OCPP 2.0.1: charger messages -> internal events."""

from __future__ import annotations

import weakref
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cpo_gateway.authorization import AuthResult
from cpo_gateway.charger_values import now_text, sample_value, scaled_sample, ts
from cpo_gateway.event_log import log_event
from cpo_gateway.events import ENERGY_REGISTER, Boot, Sample, SessionEnded, SessionStarted, StatusChanged
from cpo_gateway.metering import store_meter_values
from cpo_gateway.ocpi_status import OCPI_FROM_V201
from kernel.meter_reading import register_readings
from kernel.timeutil import format_rfc3339

if TYPE_CHECKING:
    from cpo_gateway.connection import ChargerConnection

VERSION = "2.0.1"

_FAST_PATH_SEQ_NOS: weakref.WeakKeyDictionary[ChargerConnection, dict[str, set[int]]] = (
    weakref.WeakKeyDictionary()
)
"""Per connection, per transaction: the seqNos of Updated events that took the group-commit path (which
writes meter rows only). They are handed to the session store with the transaction's next event that takes
the full path (its Ended at the latest), so a gap in the seqNos means a message really is missing."""


def id_token_info(auth: AuthResult) -> dict[str, Any]:
    info: dict[str, Any] = {"status": auth.status}
    if auth.expiry is not None:
        info["cacheExpiryDateTime"] = format_rfc3339(auth.expiry)
    return info


def samples(meter_values: list[dict[str, Any]]) -> tuple[Sample, ...]:
    out: list[Sample] = []
    for mv in meter_values:
        when = ts(mv.get("timestamp"), "meterValue.timestamp")
        for sv in mv.get("sampledValue", []):
            value = sv["value"]
            raw = value
            if not isinstance(value, Decimal):
                value = Decimal(value)
            sample_value(value, raw)
            uom = sv.get("unitOfMeasure") or {}
            if "multiplier" in uom:
                value = scaled_sample(value, uom["multiplier"], raw)
            signed = sv.get("signedMeterValue")
            out.append(
                Sample(
                    timestamp=when,
                    value=value,
                    measurand=sv.get("measurand", ENERGY_REGISTER),
                    unit=uom.get("unit", "Wh"),
                    phase=sv.get("phase", ""),
                    location=sv.get("location", "Outlet"),
                    context=sv.get("context", "Sample.Periodic"),
                    signed_data=signed.get("signedMeterData") if signed else None,
                )
            )
    return tuple(out)


def public_key(meter_values: list[dict[str, Any]]) -> str | None:
    """The first ``signedMeterValue.publicKey`` of the meter values ("Base64 encoded, sending depends on
    configuration variable PublicKeyWithSignedMeterValue"): the key that verifies the signed values."""
    for mv in meter_values:
        for sv in mv.get("sampledValue", []):
            key = (sv.get("signedMeterValue") or {}).get("publicKey")
            if key:
                return str(key)
    return None


def _register(smp: tuple[Sample, ...], context: str) -> Decimal | None:
    """The energy register (Wh) of the event's ``context`` samples: the phase-less value, else the sum of a
    complete phase set (:func:`kernel.meter_reading.register_readings`); of several, the earliest Begin and
    the latest End."""
    readings = register_readings(s for s in smp if s.context == context)
    if not readings:
        return None
    return (readings[0] if context == "Transaction.Begin" else readings[-1]).wh


async def _authorize(
    conn: ChargerConnection, token: dict[str, Any], evse_id: int | None = None
) -> AuthResult:
    evse_pk = conn.ref.evse_map.get(evse_id) if evse_id is not None else None
    return await conn.gw.authorizer.authorize(
        token["idToken"], token.get("type", "ISO14443"), charge_point_id=conn.ref.id,
        location_id=conn.ref.location_id, evse_pk=evse_pk,
    )  # fmt: skip


async def boot_notification(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    station = p["chargingStation"]
    boot = Boot(
        vendor=station["vendorName"],
        model=station["model"],
        serial_number=station.get("serialNumber"),
        firmware_version=station.get("firmwareVersion"),
        reason=p.get("reason"),
    )
    status, retry = await conn.gw.chargers.boot(conn.ref, boot)
    interval = retry or (conn.gw.settings.heartbeat_interval if status == "Accepted" else 60)
    return {"status": status, "currentTime": now_text(), "interval": interval}


async def heartbeat(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": now_text()}


async def status_notification(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    ev = StatusChanged(
        evse_id=p["evseId"],
        connector_id=p["connectorId"],
        ocpp_status=p["connectorStatus"],
        ocpi_status=OCPI_FROM_V201.get(p["connectorStatus"]),
        timestamp=ts(p["timestamp"]),
    )
    await conn.gw.chargers.record_status(conn.ref, ev)
    return {}


async def authorize(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    return {"idTokenInfo": id_token_info(await _authorize(conn, p["idToken"]))}


async def transaction_event(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    info = p["transactionInfo"]
    tx = info["transactionId"]
    when = ts(p["timestamp"])
    evse = p.get("evse") or {}
    evse_id, connector_id = evse.get("id"), evse.get("connectorId")
    smp = samples(p.get("meterValue", []))
    key = public_key(p.get("meterValue", []))
    token = p.get("idToken")
    auth = await _authorize(conn, token, evse_id) if token and token.get("idToken") else None
    answer: dict[str, Any] = {"idTokenInfo": id_token_info(auth)} if auth is not None else {}
    sessions = conn.gw.sessions
    kind = p["eventType"]
    seq_no, offline = p.get("seqNo"), bool(p.get("offline", False))
    fast_seq = _FAST_PATH_SEQ_NOS.setdefault(conn, {})
    earlier = tuple(sorted(fast_seq.get(tx, ())))
    if kind == "Ended":
        ended = SessionEnded(
            transaction_id=tx,
            timestamp=when,
            meter_stop_wh=_register(smp, "Transaction.End"),
            reason=info.get("stoppedReason", "Local"),
            id_tag=token.get("idToken") if token else None,
            evse_id=evse_id,
            connector_id=connector_id,
            samples=smp,
            meter_public_key=key,
            seq_no=seq_no,
            earlier_seq_nos=earlier,
            offline=offline,
        )
        await sessions.ended(conn.ref, ended, auth)
        conn.active_tx.pop(tx, None)
        fast_seq.pop(tx, None)
        return answer
    if kind == "Updated" and auth is None and tx in conn.active_tx:
        if smp:
            await store_meter_values(conn, tx, evse_id, smp)
        if seq_no is not None:
            fast_seq.setdefault(tx, set()).add(seq_no)
        return answer
    started = SessionStarted(
        transaction_id=tx,
        evse_id=evse_id,
        connector_id=connector_id,
        id_tag=token.get("idToken") if token else None,
        timestamp=when if kind == "Started" else min([when, *(s.timestamp for s in smp)]),
        meter_start_wh=_register(smp, "Transaction.Begin"),
        remote_start_id=info.get("remoteStartId"),
        reservation_id=p.get("reservationId"),  # the reservation this transaction ends (T7)
        samples=smp,
        meter_public_key=key,
        seq_no=seq_no,
        earlier_seq_nos=earlier,
        offline=offline,
    )
    session = await sessions.started(conn.ref, started, auth, is_start_event=kind == "Started")
    fast_seq.pop(tx, None)
    if session.end_time is None:
        conn.active_tx[tx] = [session.id, session.meter_start_wh, None]
    return answer


async def meter_values(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    """Values outside a transaction (evseId 0: the station's main meter): kept per charger and EVSE."""
    smp = samples(p["meterValue"])
    if smp:
        await conn.gw.chargers.charger_meter_values(conn.ref, p["evseId"], smp)
    return {}


def _logged(action: str, answer: dict[str, Any] | None = None) -> Any:
    async def handler(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
        await log_event(conn, action, p, p.get("timestamp") or p.get("generatedAt"))
        return dict(answer or {})

    return handler


HANDLERS = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "TransactionEvent": transaction_event,
    "MeterValues": meter_values,
    "DataTransfer": _logged("DataTransfer", {"status": "UnknownVendorId"}),
    "FirmwareStatusNotification": _logged("FirmwareStatusNotification"),
    "PublishFirmwareStatusNotification": _logged("PublishFirmwareStatusNotification"),
    "LogStatusNotification": _logged("LogStatusNotification"),
    "SecurityEventNotification": _logged("SecurityEventNotification"),
    "NotifyEvent": _logged("NotifyEvent"),
    "NotifyReport": _logged("NotifyReport"),
    "NotifyMonitoringReport": _logged("NotifyMonitoringReport"),
    "NotifyChargingLimit": _logged("NotifyChargingLimit"),
    "ClearedChargingLimit": _logged("ClearedChargingLimit"),
    "NotifyCustomerInformation": _logged("NotifyCustomerInformation"),
    "NotifyDisplayMessages": _logged("NotifyDisplayMessages"),
    "NotifyEVChargingNeeds": _logged("NotifyEVChargingNeeds", {"status": "Rejected"}),
    "NotifyEVChargingSchedule": _logged("NotifyEVChargingSchedule", {"status": "Accepted"}),
    "ReportChargingProfiles": _logged("ReportChargingProfiles"),
    "ReservationStatusUpdate": _logged("ReservationStatusUpdate"),
    "SignCertificate": _logged("SignCertificate", {"status": "Rejected"}),
    "Get15118EVCertificate": _logged("Get15118EVCertificate", {"status": "Failed", "exiResponse": ""}),
    "GetCertificateStatus": _logged("GetCertificateStatus", {"status": "Failed"}),
}
