"""The CALLERROR each malformed OCPP-J frame gets (OCPP-J 2.0.1 section 4.3; 1.6 spells them its way, see
:data:`cpo_gateway.framing.V16_CODES`): the cases the issue 15 probe found answered with no or the wrong code."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cpo_gateway.framing import FrameError, parse_frame
from kernel.jsonutil import loads
from tests.gateway.conftest import basic


@pytest.mark.parametrize(
    ("text", "uid", "code"),
    [
        ("not json", "-1", "RpcFrameworkError"),
        ("[" * 100_000 + "]" * 100_000, "-1", "RpcFrameworkError"),  # deeper than the parser recurses
        ('{"a": 1}', "-1", "RpcFrameworkError"),
        ('[2, "a"]', "a", "RpcFrameworkError"),
        ('[true, "a", "Heartbeat", {}]', "a", "RpcFrameworkError"),
        ('[2.0, "a", "Heartbeat", {}]', "a", "RpcFrameworkError"),
        ('[2, 7, "Heartbeat", {}]', "-1", "RpcFrameworkError"),
        ('[2, "", "Heartbeat", {}]', "-1", "RpcFrameworkError"),
        ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "-1", "RpcFrameworkError"),  # ids are at most 36
        ('[2, "a", 5, {}]', "a", "RpcFrameworkError"),
        ('[2, "a", "Heartbeat"]', "a", "RpcFrameworkError"),
        ('[2, "a", "Heartbeat", {}, 1]', "a", "RpcFrameworkError"),
        ('[2, "a", "Heartbeat", []]', "a", "FormatViolation"),
        ('[2, "a", "Heartbeat", "x"]', "a", "FormatViolation"),
        ('[7, "a", "Heartbeat", {}]', "a", "MessageTypeNotSupported"),
        ('[2, "a", "DataTransfer", {"vendorId": "x\\u0000"}]', "a", "PropertyConstraintViolation"),
        ('[2, "a", "DataTransfer", {"vendorId": "x\x00"}]', "-1", "RpcFrameworkError"),  # raw NUL: not JSON
    ],
)
def test_malformed_frames_get_the_specs_error(text: str, uid: str, code: str) -> None:
    with pytest.raises(FrameError) as refused:
        parse_frame(text, loads)
    assert (refused.value.unique_id, refused.value.code) == (uid, code)
    assert refused.value.description


def test_well_formed_frames_pass() -> None:
    assert parse_frame('[2, "a", "Heartbeat", {}]', loads) == [2, "a", "Heartbeat", {}]
    assert parse_frame('[3, "a", {"currentTime": "x"}]', loads)[0] == 3
    assert parse_frame('[4, "a", "GenericError", "", {}]', loads)[0] == 4
    assert parse_frame('[3, "a", {"data": "\\u0000"}]', loads)[0] == 3  # a result is never answered


async def test_a_nul_in_the_charger_identity_is_404_at_the_upgrade(gateway, caplog) -> None:
    """PostgreSQL refuses a NUL in a query: the upgrade was a 500 with a traceback; now an unknown charger."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(
            f"ws://127.0.0.1:{gateway.port}/ocpp/CP%0016",
            subprotocols=["ocpp1.6"],
            additional_headers=basic("CP16"),
        )
    assert refused.value.response.status_code == 404
    assert not [r for r in caplog.records if r.exc_info]
