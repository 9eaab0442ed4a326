"""A seeded OCPP-J frame fuzzer against a real gateway websocket (issue 15 item 5): random text, random JSON and
mutations of valid frames (1.6 and 2.0.1), each followed by a Heartbeat sentinel. Every answer must be a
well-formed CALLRESULT or CALLERROR (``[4, id, code, description, {details}]`` with a code of the charger's
version), at most one per frame; the connection survives or is closed cleanly (1003/1008/1009) and is then
reopened; and nothing is logged with a traceback.

The frames are drawn by hypothesis with ``derandomize=True`` (the same frames on every run); the short run is part
of the suite, ``EVHUB_FUZZ_EXAMPLES=5000`` runs a long one (``make faults``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from tests.gateway.conftest import T0, Seed, basic, gateway_settings, iso

EXAMPLES = int(os.environ.get("EVHUB_FUZZ_EXAMPLES", "150"))
CODES_201 = {
    "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported", "NotImplemented",
    "NotSupported", "OccurrenceConstraintViolation", "PropertyConstraintViolation", "ProtocolError",
    "RpcFrameworkError", "SecurityError", "TypeConstraintViolation",
}  # fmt: skip
CODES_16 = {
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError", "FormationViolation",
    "PropertyConstraintViolation", "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError",
}  # fmt: skip
CLEAN_CLOSES = {1000, 1003, 1008, 1009}

VALID_16 = [
    [2, "v1", "Heartbeat", {}],
    [2, "v2", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}],
    [2, "v3", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": iso(T0), "sampledValue": [
        {"value": "1000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]}],
    [2, "v4", "Authorize", {"idTag": "AABBCC01"}],
    [2, "v5", "DataTransfer", {"vendorId": "x", "messageId": "y", "data": "z"}],
]  # fmt: skip
VALID_201 = [
    [2, "v1", "Heartbeat", {}],
    [2, "v2", "StatusNotification", {"timestamp": iso(T0), "connectorStatus": "Available", "evseId": 1,
                                     "connectorId": 1}],
    [2, "v3", "MeterValues", {"evseId": 1, "meterValue": [{"timestamp": iso(T0), "sampledValue": [
        {"value": 1000, "measurand": "Energy.Active.Import.Register"}]}]}],
    [2, "v4", "Authorize", {"idToken": {"idToken": "AABBCC01", "type": "ISO14443"}}],
]  # fmt: skip

ODD_VALUES = st.sampled_from(
    [None, True, -1, 0, 2**31, 2**63, 2**64 + 1, -(2**70), 1e308, "1e999999", "", "\x00", "\u0000x", "²", "٣",
     "x" * 5000, "\ud800", [], {}, [[[[[]]]]], "10000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "NaN"]
)  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | ODD_VALUES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _mutate(frame: Any, path: list[int], value: Any) -> Any:
    """``frame`` with the element reached by ``path`` (indexes into lists and dict items) replaced."""
    if not path:
        return value
    if isinstance(frame, list) and frame:
        i = path[0] % len(frame)
        return [*frame[:i], _mutate(frame[i], path[1:], value), *frame[i + 1 :]]
    if isinstance(frame, dict) and frame:
        key = sorted(frame)[path[0] % len(frame)]
        return {**frame, key: _mutate(frame[key], path[1:], value)}
    return value


@st.composite
def frames(draw: st.DrawFn, valid: list[list[Any]]) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.text(max_size=60))
    if kind == 1:
        return json.dumps(draw(JSON))
    base = draw(st.sampled_from(valid))
    if kind == 2:  # drop or add elements
        cut = draw(st.integers(0, len(base) + 1))
        return json.dumps(base[:cut] + draw(st.lists(JSON, max_size=2)))
    mutated = _mutate(
        base, draw(st.lists(st.integers(0, 7), min_size=1, max_size=6)), draw(JSON | ODD_VALUES)
    )
    text = json.dumps(mutated, ensure_ascii=draw(st.booleans()))
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") has no UTF-8 text frame: send it escaped
        text = json.dumps(mutated)
    if kind == 5:  # truncate or deepen the text itself
        return (
            text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else "[" * 5000 + text + "]" * 5000
        )
    return text


def _draw(strategy: st.SearchStrategy[str], n: int) -> list[str]:
    drawn: list[str] = []

    @settings(
        max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(strategy)
    def collect(frame: str) -> None:
        drawn.append(frame)

    collect()
    return drawn


def _well_formed(answer: Any, codes: set[str]) -> bool:
    if not isinstance(answer, list) or len(answer) < 3 or not isinstance(answer[1], str):
        return False
    if answer[0] == 3:
        return len(answer) == 3 and isinstance(answer[2], dict)
    return (
        answer[0] == 4
        and len(answer) == 5
        and answer[2] in codes
        and isinstance(answer[3], str)
        and isinstance(answer[4], dict)
    )


async def _open(gw: Gateway, identity: str, protocol: str) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{gw.port}/ocpp/{identity}",
        subprotocols=[protocol],
        additional_headers=basic(identity),
    )


async def _answers_until_sentinel(ws: ClientConnection, sentinel: str) -> list[Any]:
    """Every CALLRESULT/CALLERROR the server sent before it answered the sentinel Heartbeat."""
    answers = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if isinstance(message, list) and message and message[0] == 2:
            continue  # the server's own CALLs (not answers)
        if isinstance(message, list) and len(message) > 1 and message[1] == sentinel:
            assert message[0] == 3, message
            return answers
        answers.append(message)


@pytest.fixture
async def fuzz_gateway(db: Database, seeded: Seed, database_url: str):
    gw = Gateway(
        gateway_settings(database_url, ocpp_rate_limit=100_000, ocpp_rate_burst=100_000), db, "node-fuzz"
    )
    await gw.start("127.0.0.1", 0)
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.mark.parametrize(("identity", "protocol"), [("CP16", "ocpp1.6"), ("CP201", "ocpp2.0.1")])
async def test_fuzzed_frames_get_well_formed_answers(
    fuzz_gateway: Gateway, caplog: pytest.LogCaptureFixture, identity: str, protocol: str
) -> None:
    caplog.set_level(logging.INFO)
    valid = VALID_16 if protocol == "ocpp1.6" else VALID_201
    codes = CODES_16 if protocol == "ocpp1.6" else CODES_201
    ws = await _open(fuzz_gateway, identity, protocol)
    reopened = 0
    try:
        for n, frame in enumerate(_draw(frames(valid), EXAMPLES)):
            sentinel = f"sentinel-{n}"
            try:
                await ws.send(frame)
                await ws.send(json.dumps([2, sentinel, "Heartbeat", {}]))
                answers = await _answers_until_sentinel(ws, sentinel)
            except ConnectionClosed:
                assert ws.close_code in CLEAN_CLOSES, (frame[:300], ws.close_code)
                reopened += 1
                ws = await _open(fuzz_gateway, identity, protocol)
                continue
            assert len(answers) <= 1, (frame[:300], answers)
            for answer in answers:
                assert _well_formed(answer, codes), (frame[:300], answer)
    finally:
        await ws.close()
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [(r.name, r.getMessage()) for r in tracebacks]
    assert reopened < EXAMPLES // 10, f"the gateway closed {reopened} of {EXAMPLES} connections"
