"""The compiled schema predicates never accept what the ocpp library's validator rejects (property test over
mutated real payloads, both versions), and accept the valid ones."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.messages import get_validator

from cpo_gateway.schemas import fast_check

TS = "2026-03-02T08:00:00Z"
SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("1.6", "MeterValues", {"connectorId": 1, "transactionId": 5, "meterValue": [{"timestamp": TS, "sampledValue": [
        {"value": "12.5", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
         "unit": "Wh", "phase": "L1", "location": "Outlet", "format": "Raw"}]}]}),
    ("1.6", "StartTransaction", {"connectorId": 1, "idTag": "AABB", "meterStart": 0, "timestamp": TS,
                                 "reservationId": 3}),
    ("1.6", "StopTransaction", {"transactionId": 1, "meterStop": 10, "timestamp": TS, "reason": "Local",
                                "transactionData": [{"timestamp": TS, "sampledValue": [{"value": "1"}]}]}),
    ("1.6", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available",
                                   "timestamp": TS, "info": "x"}),
    ("1.6", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M", "firmwareVersion": "1"}),
    ("2.0.1", "TransactionEvent", {"eventType": "Started", "timestamp": TS, "triggerReason": "Authorized",
                                   "seqNo": 0, "transactionInfo": {"transactionId": "T1", "remoteStartId": 4},
                                   "idToken": {"idToken": "AABB", "type": "ISO14443"},
                                   "evse": {"id": 1, "connectorId": 1},
                                   "meterValue": [{"timestamp": TS, "sampledValue": [
                                       {"value": Decimal("1.5"), "unitOfMeasure": {"unit": "kWh", "multiplier": 0},
                                        "signedMeterValue": {"signedMeterData": "x", "signingMethod": "y",
                                                             "encodingMethod": "z", "publicKey": "k"}}]}]}),
    ("2.0.1", "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}),
    ("2.0.1", "StatusNotification", {"timestamp": TS, "connectorStatus": "Occupied", "evseId": 1,
                                     "connectorId": 1}),
]  # fmt: skip

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**12), st.text(max_size=60), st.just("x" * 600),
    st.decimals(allow_nan=False, allow_infinity=False, places=2), st.just([]), st.just({}),
    st.sampled_from(["Available", "Started", "Energy.Active.Import.Register", "kWh", "ISO14443", TS]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.sampled_from(["a", "value", "id"]), st.integers()),
)  # fmt: skip


def _mutate(doc: Any, data: st.DataObject) -> None:
    node = doc
    while True:
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            if data.draw(st.booleans()) and isinstance(node[key], (dict, list)) and node[key]:
                node = node[key]
                continue
            action = data.draw(st.sampled_from(["delete", "replace", "add"]))
            if action == "delete":
                del node[key]
            elif action == "replace":
                node[key] = data.draw(VALUES)
            else:
                node[data.draw(st.sampled_from(["extra", "value", "type", "id", key + "X"]))] = data.draw(
                    VALUES
                )
            return
        if isinstance(node, list) and node:
            i = data.draw(st.integers(0, len(node) - 1))
            if data.draw(st.booleans()) and isinstance(node[i], (dict, list)) and node[i]:
                node = node[i]
                continue
            node[i] = data.draw(VALUES)
            return
        return


def test_valid_samples_are_accepted() -> None:
    for version, action, payload in SAMPLES:
        assert get_validator(2, action, version).is_valid(payload), action
        check = fast_check(version, 2, action)
        assert check is not None and check(payload), (version, action)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_fast_check_never_accepts_more_than_the_library(data: st.DataObject) -> None:
    version, action, payload = data.draw(st.sampled_from(SAMPLES))
    doc = copy.deepcopy(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(doc, data)
    check = fast_check(version, 2, action)
    assert check is not None
    if check(doc):
        assert get_validator(2, action, version).is_valid(doc), doc
