"""What the hub sends a charger is exactly OCPP (issue #13, item 5): every remote command of
:mod:`cpo_gateway.commands`, for OCPP 1.6 and 2.0.1, sent through the REST API to a charger over a real
websocket, reaches it as a CALL that is valid against the official request schema the ``ocpp`` library ships
(read here on its own, :mod:`tests.gateway._ocpp_schemas`), with a message id unique on the connection, and
every 2.0.1 RequestStartTransaction with its own ``remoteStartId``. Every CALLRESULT the hub answers a charger
is valid against the response schema, every CALLERROR has one of the version's own codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cpo_gateway.commands import COMMANDS
from cpo_gateway.server import Gateway
from kernel.components import Hub
from kernel.db.engine import Database
from tests.gateway._ocpp_schemas import call_problems, frame_problems, minimal_call, result_problems
from tests.gateway.conftest import Client, Seed, api_client, command_hub, open_client

EXPIRY = "2026-12-01T10:00:00Z"

PROFILE_16 = {
    "chargingProfileId": 11,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Relative",
    "chargingSchedule": {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
    },
}
PROFILE_201 = {
    "id": 11,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Relative",
    "chargingSchedule": [
        {"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}
    ],
}

# (command, 1.6 params, 2.0.1 params): every command of cpo_gateway.commands
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("remote-start", {"id_tag": "AABBCC01", "evse_id": 1}, {"id_tag": "AABBCC01", "evse_id": 1}),
    ("remote-start", {"id_tag": "AABBCC01"}, {"id_tag": "AABBCC01"}),
    ("remote-stop", {"transaction_id": 5}, {"transaction_id": "tx-5"}),
    ("reset", {"type": "Hard"}, {"type": "Soft"}),
    ("unlock-connector", {"evse_id": 1}, {"evse_id": 1, "connector_id": 1}),
    ("change-availability", {"evse_id": 1, "operative": False}, {"evse_id": 1, "operative": True}),
    ("change-availability", {"operative": True}, {"operative": False}),
    (
        "trigger-message",
        {"message": "StatusNotification", "evse_id": 1},
        {"message": "StatusNotification", "evse_id": 1},
    ),
    ("trigger-message", {"message": "Heartbeat"}, {"message": "Heartbeat"}),
    ("get-configuration", {"keys": ["HeartbeatInterval"]}, {"keys": ["OCPPCommCtrlr.HeartbeatInterval"]}),
    ("get-configuration", {}, {"keys": ["OCPPCommCtrlr.HeartbeatInterval"]}),
    (
        "change-configuration",
        {"key": "HeartbeatInterval", "value": 120},
        {"key": "OCPPCommCtrlr.HeartbeatInterval", "value": 120},
    ),
    ("clear-cache", {}, {}),
    (
        "reserve-now",
        {"reservation_id": 7, "evse_id": 1, "id_tag": "AABBCC01", "expiry": EXPIRY},
        {"reservation_id": 7, "evse_id": 1, "id_tag": "AABBCC01", "expiry": EXPIRY},
    ),
    ("cancel-reservation", {"reservation_id": 7}, {"reservation_id": 7}),
    (
        "set-charging-profile",
        {"evse_id": 1, "profile": PROFILE_16},
        {"evse_id": 1, "profile": PROFILE_201},
    ),
    ("clear-charging-profile", {"id": 11, "evse_id": 1}, {"id": 11, "evse_id": 1}),
    ("clear-charging-profile", {}, {}),
]

ANSWERS_16: dict[str, Any] = {
    "RemoteStartTransaction": {"status": "Accepted"},
    "RemoteStopTransaction": {"status": "Accepted"},
    "Reset": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "ChangeAvailability": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "GetConfiguration": {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
    },
    "ChangeConfiguration": {"status": "Accepted"},
    "ClearCache": {"status": "Accepted"},
    "ReserveNow": {"status": "Accepted"},
    "CancelReservation": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
}
_VARIABLE = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
ANSWERS_201: dict[str, Any] = {
    "RequestStartTransaction": {"status": "Accepted"},
    "RequestStopTransaction": {"status": "Accepted"},
    "Reset": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "ChangeAvailability": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "GetVariables": {
        "getVariableResult": [{"attributeStatus": "Accepted", "attributeValue": "60", **_VARIABLE}]
    },
    "SetVariables": {"setVariableResult": [{"attributeStatus": "Accepted", **_VARIABLE}]},
    "ClearCache": {"status": "Accepted"},
    "ReserveNow": {"status": "Accepted"},
    "CancelReservation": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
}
CHARGERS = [("CP16", "ocpp1.6", "1.6", ANSWERS_16), ("CP201", "ocpp2.0.1", "2.0.1", ANSWERS_201)]


@pytest.fixture
async def hub(db: Database, seeded: Seed, database_url: str) -> AsyncIterator[Hub]:
    async with command_hub(database_url, db, command_timeout=2) as running:
        yield running


async def _charger(hub: Hub, identity: str, protocol: str, answers: dict[str, Any]) -> Client:
    gw = hub.services.gateway
    assert isinstance(gw, Gateway)
    client = await open_client(gw, identity, protocol)
    client.auto_reply.update(answers)
    await client.ok("Heartbeat", {})  # a first answer means the connection is registered
    return client


def _drain(client: Client) -> list[list[Any]]:
    frames = []
    while not client.incoming.empty():
        frames.append(client.incoming.get_nowait())
    return frames


def test_the_cases_cover_every_command() -> None:
    assert {c[0] for c in CASES} == set(COMMANDS)


def test_the_schema_check_finds_what_is_not_ocpp() -> None:
    """The independent check refuses an unknown field, a missing one, a wrong type, a long idTag, a date-time
    without an offset (in a CALL and in a CALLRESULT), and a message id over 36 characters."""
    assert call_problems("1.6", "ReserveNow", {"connectorId": 1, "expiryDate": EXPIRY, "idTag": "A",
                                               "reservationId": 1}) == []  # fmt: skip
    bad = {"connectorId": "1", "expiryDate": "2026-12-01T10:00:00", "idTag": "x" * 21, "extra": 1}
    problems = call_problems("1.6", "ReserveNow", bad)
    assert len(problems) == 5, problems  # type, format, length, additional property, required reservationId
    assert call_problems(
        "2.0.1", "RequestStartTransaction", {"idToken": {"idToken": "A", "type": "ISO14443"}}
    )
    bad_answer = {"idTagInfo": {"status": "Accepted", "expiryDate": "2026-12-01 10:00"}, "extra": 1}
    assert len(result_problems("1.6", "Authorize", bad_answer)) == 2  # a date-time without T/offset, a field
    assert result_problems("2.0.1", "Authorize", {"idTokenInfo": {"status": "Accepted"}}) == []
    assert frame_problems("1.6", [2, "x" * 37, "ClearCache", {}]) == [
        "ClearCache: message id " + repr("x" * 37) + " is not a string of 1..36 characters"
    ]


@pytest.mark.parametrize(("identity", "protocol", "version", "answers"), CHARGERS)
async def test_every_command_reaches_the_charger_as_exact_ocpp(
    hub: Hub, identity: str, protocol: str, version: str, answers: dict[str, Any]
) -> None:
    """Every command, sent through the REST API, arrives as a CALL valid against the official request schema,
    each with its own message id; every remote start on 2.0.1 has its own remoteStartId."""
    client = await _charger(hub, identity, protocol, answers)
    async with api_client(hub) as api:
        for command, params_16, params_201 in CASES:
            params = params_16 if version == "1.6" else params_201
            r = await api.post(f"/api/chargers/{identity}/commands/{command}", json=params)
            assert r.status_code == 200, (command, r.text)
        for _ in range(2):  # two more remote starts without an id
            r = await api.post(f"/api/chargers/{identity}/commands/remote-start", json={"id_tag": "AABBCC01"})
            assert r.status_code == 200, r.text
    frames = _drain(client)  # each CALL was queued before the charger answered it, so before its 200
    assert len(frames) == len(CASES) + 2
    problems = [p for frame in frames for p in frame_problems(version, frame)]
    assert problems == []
    ids = [frame[1] for frame in frames]
    assert len(set(ids)) == len(ids), ids
    if version == "2.0.1":
        starts = [f[3]["remoteStartId"] for f in frames if f[2] == "RequestStartTransaction"]
        assert len(starts) == 4 and len(set(starts)) == 4, starts
    await client.close()


# -- what the hub answers: CALLRESULTs and CALLERRORs ------------------------------------------------------

ERROR_CODES = {
    "1.6": {"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
            "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
            "TypeConstraintViolation", "GenericError"},
    "2.0.1": {"FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported", "NotImplemented",
              "NotSupported", "OccurrenceConstraintViolation", "PropertyConstraintViolation", "ProtocolError",
              "RpcFrameworkError", "SecurityError", "TypeConstraintViolation"},
}  # fmt: skip
"""The CALLERROR codes of each version (1.6 spells FormationViolation and OccurenceConstraintViolation)."""

NOW = "2026-03-02T08:00:00Z"
LATER = "2026-03-02T08:30:00Z"


def _flow(version: str) -> list[tuple[str, dict[str, Any]]]:
    """A charger's day: boot, status, authorize (known, blocked, unknown), a transaction with meter values."""
    if version == "1.6":
        return [
            ("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "W1"}),
            ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}),
            *[("Authorize", {"idTag": tag}) for tag in ("AABBCC01", "ROAM0001", "BLOCKED1", "NOBODY")],
            ("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000, "timestamp": NOW}),
            ("MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "1200"}]}]}),
        ]  # fmt: skip
    token = {"idToken": "AABBCC01", "type": "ISO14443"}
    event = {"timestamp": NOW, "seqNo": 0, "transactionInfo": {"transactionId": "TX-E"}, "evse": {"id": 1, "connectorId": 1}}  # fmt: skip
    return [
        ("BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "W2", "vendorName": "ACME"}}),
        ("StatusNotification", {"timestamp": NOW, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}),
        *[("Authorize", {"idToken": {"idToken": tag, "type": "ISO14443"}}) for tag in ("AABBCC01", "ROAM0001", "BLOCKED1", "NOBODY")],
        ("TransactionEvent", {**event, "eventType": "Started", "triggerReason": "Authorized", "idToken": token}),
        ("TransactionEvent", {**event, "eventType": "Updated", "seqNo": 1, "triggerReason": "MeterValuePeriodic",
                              "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": 200.0}]}]}),
        ("TransactionEvent", {**event, "eventType": "Ended", "seqNo": 2, "timestamp": LATER,
                              "triggerReason": "EVDeparted", "idToken": token}),
    ]  # fmt: skip


@pytest.mark.parametrize(("identity", "protocol", "version", "answers"), CHARGERS)
async def test_every_answer_of_the_hub_is_exact_ocpp(
    hub: Hub, identity: str, protocol: str, version: str, answers: dict[str, Any]
) -> None:
    """Every CALL a charger may send (a realistic flow, then each action the gateway handles with its
    smallest valid payload) is answered with a CALLRESULT valid against the official response schema; bad
    frames get a CALLERROR with one of the version's own error codes, a description and a details object."""
    from cpo_gateway import v16, v201

    client = await _charger(hub, identity, protocol, answers)
    handlers = v16.HANDLERS if version == "1.6" else v201.HANDLERS
    flow = _flow(version)
    calls = [*flow, *((action, minimal_call(version, action)) for action in handlers)]
    problems: list[str] = []
    for n, (action, payload) in enumerate(calls):
        answer = await client.call(action, payload)
        if answer[0] == 3:
            problems.extend(result_problems(version, action, answer[2]))
        elif n < len(flow) or not _is_callerror(version, answer):  # a smallest payload may be refused
            problems.append(f"{action} {payload}: answered {answer}")
    if version == "1.6":
        tx = (await client.ok("StartTransaction", {"connectorId": 2, "idTag": "AABBCC01", "meterStart": 0,
                                                   "timestamp": NOW}))["transactionId"]  # fmt: skip
        stop = {"transactionId": tx, "meterStop": 5000, "timestamp": LATER, "idTag": "AABBCC01"}
        problems.extend(result_problems(version, "StopTransaction", await client.ok("StopTransaction", stop)))
    bad = [
        '[2,"b1","Heartbeat"]',  # three elements
        '[2,"b2","NoSuchAction",{}]',
        '[2,"b3","Authorize",{}]',  # required property missing
        '[2,"b4","StatusNotification",{"connectorId":"one"}]',
        "not json",
    ]
    for n, frame in enumerate(bad):
        uid = f"b{n + 1}"
        answer = await (client.raw(frame, uid) if n < 4 else _raw_error(client, frame))
        if not _is_callerror(version, answer):
            problems.append(f"{frame}: answered {answer}")
    assert problems == [], "\n".join(problems)
    await client.close()


def _is_callerror(version: str, answer: list[Any]) -> bool:
    """``[4, id, code, description, details]`` with one of the version's codes."""
    return (
        len(answer) == 5 and answer[0] == 4 and answer[2] in ERROR_CODES[version]
        and isinstance(answer[3], str) and isinstance(answer[4], dict)
    )  # fmt: skip


async def _raw_error(client: Client, frame: str) -> list[Any]:
    """The CALLERROR a frame without a readable message id gets (OCPP-J: id ``-1``)."""
    return await client.raw(frame, "-1")
