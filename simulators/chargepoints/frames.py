"""The OCPP-J payloads a simulated charge point sends, as pure functions (no clock, no socket, no state).

The simulator (:mod:`simulators.chargepoints.charger`) builds every transaction frame with these, and the
property tests build charger scripts with them, so both speak one wire format. Variations the simulator itself
does not use (kWh, a 2.0.1 ``multiplier``, phases, signed values) are keyword options whose defaults are what
the simulator sends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

ENERGY_REGISTER = "Energy.Active.Import.Register"


def stamp(dt: datetime) -> str:
    """An OCPP timestamp: UTC, milliseconds, ``Z``."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sampled_value(
    version: str,
    value: float | str,
    context: str,
    *,
    measurand: str = ENERGY_REGISTER,
    unit: str = "Wh",
    multiplier: int = 0,
    phase: str | None = None,
    signed: str | None = None,
) -> dict[str, Any]:
    """One sampledValue. 1.6: the value as text with one decimal when a number, ``unit``; ``signed`` makes it
    a ``format: SignedData`` sample whose value is the signature. 2.0.1: a number, ``unitOfMeasure`` (with
    ``multiplier`` when set), ``signed`` as ``signedMeterValue``."""
    out: dict[str, Any]
    if version == "1.6":
        if signed is not None:
            out = {"value": signed, "format": "SignedData", "context": context, "measurand": measurand}
        else:
            text = f"{value:.1f}" if isinstance(value, float) else str(value)
            out = {"value": text, "context": context, "measurand": measurand, "unit": unit}
    else:
        uom: dict[str, Any] = {"unit": unit}
        if multiplier:
            uom["multiplier"] = multiplier
        out = {"value": value, "context": context, "measurand": measurand, "unitOfMeasure": uom}
        if signed is not None:
            out["signedMeterValue"] = {
                "signedMeterData": signed,
                "signingMethod": "ECDSA-secp256r1-SHA256",
                "encodingMethod": "OCMF",
                "publicKey": "",
            }
    if phase:
        out["phase"] = phase
    return out


def meter_value(at: datetime, values: list[dict[str, Any]]) -> dict[str, Any]:
    """One meterValue: a timestamp and its sampled values."""
    return {"timestamp": stamp(at), "sampledValue": values}


def register(version: str, at: datetime, wh: float, context: str) -> dict[str, Any]:
    """The energy register in Wh at ``at`` as one meterValue (what the simulator reports)."""
    value = round(wh, 1)
    return meter_value(at, [sampled_value(version, value, context)])


def status(version: str, at: datetime, connector: int, state: str) -> dict[str, Any]:
    """A StatusNotification payload; a 1.6 status is mapped onto 2.0.1's connectorStatus."""
    if version == "1.6":
        return {"connectorId": connector, "errorCode": "NoError", "status": state, "timestamp": stamp(at)}
    v201 = {
        "Available": "Available",
        "Preparing": "Occupied",
        "Charging": "Occupied",
        "Finishing": "Occupied",
    }
    return {
        "timestamp": stamp(at),
        "connectorStatus": v201.get(state, "Unavailable"),
        "evseId": connector,
        "connectorId": 1,
    }


def start_transaction(connector: int, token: str, meter_start: int, at: datetime) -> dict[str, Any]:
    """A 1.6 StartTransaction payload."""
    return {"connectorId": connector, "idTag": token, "meterStart": meter_start, "timestamp": stamp(at)}


def meter_values(connector: int, transaction_id: int, values: list[dict[str, Any]]) -> dict[str, Any]:
    """A 1.6 MeterValues payload."""
    return {"connectorId": connector, "transactionId": transaction_id, "meterValue": values}


def stop_transaction(
    transaction_id: int, token: str, meter_stop: int, at: datetime, reason: str, values: list[dict[str, Any]]
) -> dict[str, Any]:
    """A 1.6 StopTransaction payload with its transactionData."""
    return {
        "transactionId": transaction_id,
        "idTag": token,
        "meterStop": meter_stop,
        "timestamp": stamp(at),
        "reason": reason,
        "transactionData": values,
    }


def transaction_event(
    kind: str,
    at: datetime,
    seq_no: int,
    tx: str,
    evse: int,
    trigger: str,
    token: str | None,
    values: list[dict[str, Any]],
    stopped: str | None = None,
) -> dict[str, Any]:
    """A 2.0.1 TransactionEvent payload (Started / Updated / Ended)."""
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": stamp(at),
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": evse, "connectorId": 1},
        "meterValue": values,
    }
    if token:
        payload["idToken"] = {"idToken": token, "type": "ISO14443"}
    if stopped:
        payload["transactionInfo"]["stoppedReason"] = stopped
    return payload
