"""Remote commands by name, translated to the charger's OCPP version.

``build(command, version, params)`` returns ``(action, payload)``. Commands and their parameters
(snake_case; optional ones in brackets):

=======================  =====================================================  ==========================
command                  params                                                 1.6 / 2.0.1 action
=======================  =====================================================  ==========================
remote-start             id_tag, [evse_id], [remote_start_id]                   RemoteStartTransaction /
                                                                                RequestStartTransaction
remote-stop              transaction_id                                         RemoteStopTransaction /
                                                                                RequestStopTransaction
reset                    [type: Soft|Hard]                                      Reset
unlock-connector         evse_id, [connector_id]                                UnlockConnector
change-availability      [evse_id], operative: bool                             ChangeAvailability
trigger-message          message, [evse_id]                                     TriggerMessage
get-configuration        [keys: list]  (2.0.1 keys are "Component.Variable")    GetConfiguration /
                                                                                GetVariables
change-configuration     key, value                                             ChangeConfiguration /
                                                                                SetVariables
clear-cache                                                                     ClearCache
reserve-now              reservation_id, evse_id, id_tag, expiry                ReserveNow
cancel-reservation       reservation_id                                         CancelReservation
set-charging-profile     evse_id, profile (the version's own profile object)    SetChargingProfile
clear-charging-profile   [id], [evse_id]                                        ClearChargingProfile
=======================  =====================================================  ==========================

Any other OCPP action can be sent raw (``POST /api/chargers/{id}/call/{Action}``). A 2.0.1 remote start
without ``remote_start_id`` gets a new one (:class:`RemoteStartIds`), never a fixed value. Every call built
here, and every raw one, is checked against the request schema of the charger's version before it is sent
(:func:`cpo_gateway.validation.validate_call`): an operator's ``expiry`` must be an RFC 3339 date-time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cpo_gateway.validation import validate_call
from kernel.timeutil import utcnow

_ID_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


class RemoteStartIds:
    """``remoteStartId`` values for RequestStartTransaction (2.0.1: the id the charger returns in the
    TransactionEvent of the transaction it starts), one per request: each is ``max(previous + 1, seconds since
    2025-01-01 by the hub's clock)``, so they increase within a process and a restarted process does not reuse
    ids as long as starts averaged under one a second; an int32 until 2093."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, int((utcnow() - _ID_EPOCH).total_seconds()))
        return self._last


REMOTE_START_IDS = RemoteStartIds()


class CommandError(ValueError):
    """Unknown command or bad parameters."""


def _need(params: dict[str, Any], key: str) -> Any:
    if key not in params or params[key] is None:
        raise CommandError(f"parameter {key!r} is required")
    return params[key]


def _component_variable(key: str) -> tuple[str, str]:
    component, sep, variable = key.partition(".")
    if not sep:
        raise CommandError(f"2.0.1 keys are Component.Variable, got {key!r}")
    return component, variable


def _token(id_tag: str) -> dict[str, Any]:
    return {"idToken": id_tag, "type": "ISO14443"}


def _remote_start_id(params: dict[str, Any]) -> int:
    """The caller's ``remote_start_id``, else a new one (never the same for two requests)."""
    given = params.get("remote_start_id")
    return int(given) if given is not None else REMOTE_START_IDS.next()


def build(command: str, version: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(action, payload)`` for ``command``; :class:`CommandError` for an unknown command or a missing
    parameter, :class:`~cpo_gateway.validation.InvalidCall` when the call is not valid against the request
    schema of ``version`` (it must never be sent)."""
    action, payload = _build(command, version, params)
    validate_call(version, action, payload)
    return action, payload


def _build(command: str, version: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    v16 = version == "1.6"
    p = params
    if command == "remote-start":
        if v16:
            payload: dict[str, Any] = {"idTag": _need(p, "id_tag")}
            if p.get("evse_id") is not None:
                payload["connectorId"] = int(p["evse_id"])
            return "RemoteStartTransaction", payload
        payload = {"idToken": _token(_need(p, "id_tag")), "remoteStartId": _remote_start_id(p)}
        if p.get("evse_id") is not None:
            payload["evseId"] = int(p["evse_id"])
        return "RequestStartTransaction", payload
    if command == "remote-stop":
        tx = _need(p, "transaction_id")
        if v16:
            return "RemoteStopTransaction", {"transactionId": int(tx)}
        return "RequestStopTransaction", {"transactionId": str(tx)}
    if command == "reset":
        kind = p.get("type", "Soft")
        if kind not in ("Soft", "Hard"):
            raise CommandError("type must be Soft or Hard")
        if v16:
            return "Reset", {"type": kind}
        return "Reset", {"type": "Immediate" if kind == "Hard" else "OnIdle"}
    if command == "unlock-connector":
        evse = int(_need(p, "evse_id"))
        if v16:
            return "UnlockConnector", {"connectorId": evse}
        return "UnlockConnector", {"evseId": evse, "connectorId": int(p.get("connector_id") or 1)}
    if command == "change-availability":
        status = "Operative" if _need(p, "operative") else "Inoperative"
        evse = int(p.get("evse_id") or 0)
        if v16:
            return "ChangeAvailability", {"connectorId": evse, "type": status}
        payload = {"operationalStatus": status}
        if evse:
            payload["evse"] = {"id": evse}
        return "ChangeAvailability", payload
    if command == "trigger-message":
        message = _need(p, "message")
        if v16:
            payload = {"requestedMessage": message}
            if p.get("evse_id") is not None:
                payload["connectorId"] = int(p["evse_id"])
            return "TriggerMessage", payload
        payload = {"requestedMessage": message}
        if p.get("evse_id") is not None:
            payload["evse"] = {"id": int(p["evse_id"])}
        return "TriggerMessage", payload
    if command == "get-configuration":
        keys = p.get("keys") or []
        if v16:
            return "GetConfiguration", ({"key": list(keys)} if keys else {})
        if not keys:
            raise CommandError("2.0.1 needs keys (Component.Variable) for GetVariables")
        data = []
        for key in keys:
            component, variable = _component_variable(key)
            data.append({"component": {"name": component}, "variable": {"name": variable}})
        return "GetVariables", {"getVariableData": data}
    if command == "change-configuration":
        key, value = _need(p, "key"), str(_need(p, "value"))
        if v16:
            return "ChangeConfiguration", {"key": key, "value": value}
        component, variable = _component_variable(key)
        item = {"attributeValue": value, "component": {"name": component}, "variable": {"name": variable}}
        return "SetVariables", {"setVariableData": [item]}
    if command == "clear-cache":
        return "ClearCache", {}
    if command == "reserve-now":
        rid, evse, tag, expiry = (_need(p, k) for k in ("reservation_id", "evse_id", "id_tag", "expiry"))
        if v16:
            return "ReserveNow", {
                "connectorId": int(evse), "expiryDate": expiry, "idTag": tag, "reservationId": int(rid),
            }  # fmt: skip
        return "ReserveNow", {
            "id": int(rid),
            "expiryDateTime": expiry,
            "idToken": _token(tag),
            "evseId": int(evse),
        }
    if command == "cancel-reservation":
        return "CancelReservation", {"reservationId": int(_need(p, "reservation_id"))}
    if command == "set-charging-profile":
        evse, profile = int(_need(p, "evse_id")), _need(p, "profile")
        if v16:
            return "SetChargingProfile", {"connectorId": evse, "csChargingProfiles": profile}
        return "SetChargingProfile", {"evseId": evse, "chargingProfile": profile}
    if command == "clear-charging-profile":
        if v16:
            payload = {}
            if p.get("id") is not None:
                payload["id"] = int(p["id"])
            if p.get("evse_id") is not None:
                payload["connectorId"] = int(p["evse_id"])
            return "ClearChargingProfile", payload
        payload = {}
        if p.get("id") is not None:
            payload["chargingProfileId"] = int(p["id"])
        if p.get("evse_id") is not None:
            payload["chargingProfileCriteria"] = {"evseId": int(p["evse_id"])}
        return "ClearChargingProfile", payload
    raise CommandError(f"unknown command {command!r}")


COMMANDS = (
    "remote-start",
    "remote-stop",
    "reset",
    "unlock-connector",
    "change-availability",
    "trigger-message",
    "get-configuration",
    "change-configuration",
    "clear-cache",
    "reserve-now",
    "cancel-reservation",
    "set-charging-profile",
    "clear-charging-profile",
)
