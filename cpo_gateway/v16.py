"""OCPP 1.6J: charger messages -> internal events (Core, Firmware Management, Local Auth List, Reservation,
Smart Charging, Remote Trigger profiles, plus the 1.6 security extension's notifications)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from cpo_gateway.authorization import AuthResult
from cpo_gateway.charger_values import now_text, sample_value, ts
from cpo_gateway.event_log import log_event
from cpo_gateway.events import ENERGY_REGISTER, Boot, Sample, SessionEnded, SessionStarted, StatusChanged
from cpo_gateway.framing import OcppError
from cpo_gateway.metering import store_meter_values
from cpo_gateway.ocpi_status import OCPI_FROM_V16
from kernel.timeutil import format_rfc3339, utcnow

if TYPE_CHECKING:
    from cpo_gateway.connection import ChargerConnection

VERSION = "1.6"


def id_tag_info(auth: AuthResult) -> dict[str, Any]:
    status = (
        auth.status
        if auth.status in ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
        else "Blocked"
    )
    info: dict[str, Any] = {"status": status}
    if auth.expiry is not None:
        info["expiryDate"] = format_rfc3339(auth.expiry)
    return info


def samples(meter_values: list[dict[str, Any]]) -> tuple[Sample, ...]:
    out: list[Sample] = []
    for mv in meter_values:
        when = ts(mv.get("timestamp"), "meterValue.timestamp")
        for sv in mv.get("sampledValue", ()):
            raw = sv["value"]
            measurand = sv.get("measurand", ENERGY_REGISTER)
            phase = sv.get("phase", "")
            location = sv.get("location", "Outlet")
            context = sv.get("context", "Sample.Periodic")
            if sv.get("format") == "SignedData":
                out.append(Sample(when, Decimal(0), measurand, "SignedData", phase, location, context, raw))
                continue
            try:
                value = Decimal(raw)
            except InvalidOperation:
                raise OcppError(
                    "PropertyConstraintViolation", f"sampledValue.value {raw!r} is not a number"
                ) from None
            sample_value(value, raw)
            out.append(Sample(when, value, measurand, sv.get("unit", "Wh"), phase, location, context))
    return tuple(out)


async def _authorize(conn: ChargerConnection, id_tag: str, connector_id: int | None = None) -> AuthResult:
    evse_pk = conn.ref.evse_map.get(connector_id) if connector_id is not None else None
    return await conn.gw.authorizer.authorize(
        id_tag, "RFID", charge_point_id=conn.ref.id, location_id=conn.ref.location_id, evse_pk=evse_pk
    )


async def boot_notification(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    boot = Boot(
        vendor=p["chargePointVendor"],
        model=p["chargePointModel"],
        serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
        firmware_version=p.get("firmwareVersion"),
    )
    status, retry = await conn.gw.chargers.boot(conn.ref, boot)
    interval = retry or (conn.gw.settings.heartbeat_interval if status == "Accepted" else 60)
    return {"status": status, "currentTime": now_text(), "interval": interval}


async def heartbeat(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": now_text()}


async def status_notification(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    when = ts(p["timestamp"]) if "timestamp" in p else utcnow()
    ev = StatusChanged(
        evse_id=p["connectorId"],
        connector_id=p["connectorId"],
        ocpp_status=p["status"],
        ocpi_status=OCPI_FROM_V16.get(p["status"]),
        timestamp=when,
        error_code=p.get("errorCode"),
    )
    await conn.gw.chargers.record_status(conn.ref, ev)
    return {}


async def authorize(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    return {"idTagInfo": id_tag_info(await _authorize(conn, p["idTag"]))}


async def start_transaction(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    auth = await _authorize(conn, p["idTag"], p["connectorId"])
    ev = SessionStarted(
        transaction_id=None,
        evse_id=p["connectorId"],
        connector_id=p["connectorId"],
        id_tag=p["idTag"],
        timestamp=ts(p["timestamp"]),
        meter_start_wh=Decimal(p["meterStart"]),
        reservation_id=p.get("reservationId"),
    )
    tx, session = await conn.gw.sessions.start_v16(conn.ref, ev, auth)
    # the charger's MeterValues follow at once: a running session takes the group-commit path from the first
    if session.end_time is None:
        conn.active_tx[tx] = [session.id, session.meter_start_wh, None]
    else:
        conn.active_tx.pop(tx, None)
    return {"transactionId": int(tx), "idTagInfo": id_tag_info(auth)}


async def stop_transaction(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    auth = await _authorize(conn, p["idTag"]) if p.get("idTag") else None
    tx = str(p["transactionId"])
    ev = SessionEnded(
        transaction_id=tx,
        timestamp=ts(p["timestamp"]),
        meter_stop_wh=Decimal(p["meterStop"]) if "meterStop" in p else None,
        reason=p.get("reason", "Local"),
        id_tag=p.get("idTag"),
        samples=samples(p.get("transactionData", [])),
    )
    await conn.gw.sessions.ended(conn.ref, ev, auth)
    conn.active_tx.pop(tx, None)
    return {"idTagInfo": id_tag_info(auth)} if auth is not None else {}


async def meter_values(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
    tx = p.get("transactionId")
    smp = samples(p["meterValue"])
    if not smp:
        return {}
    if tx is None:  # connector-level (connectorId 0: the charger's main meter), kept per charger
        await conn.gw.chargers.charger_meter_values(conn.ref, p["connectorId"], smp)
    else:
        await store_meter_values(conn, str(tx), p["connectorId"], smp)
    return {}


def _logged(action: str, answer: dict[str, Any] | None = None) -> Any:
    async def handler(conn: ChargerConnection, p: dict[str, Any]) -> dict[str, Any]:
        await log_event(conn, action, p, p.get("timestamp"))
        return dict(answer or {})

    return handler


HANDLERS = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "StartTransaction": start_transaction,
    "StopTransaction": stop_transaction,
    "MeterValues": meter_values,
    "DataTransfer": _logged("DataTransfer", {"status": "UnknownVendorId"}),
    "DiagnosticsStatusNotification": _logged("DiagnosticsStatusNotification"),
    "FirmwareStatusNotification": _logged("FirmwareStatusNotification"),
    "SignedFirmwareStatusNotification": _logged("SignedFirmwareStatusNotification"),
    "LogStatusNotification": _logged("LogStatusNotification"),
    "SecurityEventNotification": _logged("SecurityEventNotification"),
    "SignCertificate": _logged("SignCertificate", {"status": "Rejected"}),
}
