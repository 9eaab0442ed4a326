"""Issue 13 (outgoing CALLs): every CALL the hub sends is valid against the request schema of the charger's
OCPP version, formats included, before it is sent; an invalid one is a 422 naming the field and never reaches
the charger (a fake charger over real websockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cpo_gateway.commands import build
from cpo_gateway.server import Gateway
from cpo_gateway.validation import InvalidCall, validate_call
from kernel.components import Hub
from kernel.db.engine import Database
from tests.gateway.conftest import Client, Seed, api_client, command_hub, open_client

BAD = "2026-12-01 10:00"
GOOD = "2026-12-01T10:00:00Z"
CHARGERS = [("CP16", "ocpp1.6", "expiryDate"), ("CP201", "ocpp2.0.1", "expiryDateTime")]


@pytest.fixture
async def hub(db: Database, seeded: Seed, database_url: str) -> AsyncIterator[Hub]:
    async with command_hub(database_url, db, command_timeout=2) as running:
        yield running


async def _charger(hub: Hub, identity: str, protocol: str) -> Client:
    gw = hub.services.gateway
    assert isinstance(gw, Gateway)
    client = await open_client(gw, identity, protocol)
    client.auto_reply.update(ReserveNow={"status": "Accepted"}, Reset={"status": "Accepted"})
    await client.ok("Heartbeat", {})  # a first answer means the connection is registered
    return client


def _reserve(expiry: str) -> dict[str, Any]:
    return {"reservation_id": 7, "evse_id": 1, "id_tag": "AABBCC01", "expiry": expiry}


@pytest.mark.parametrize(("identity", "protocol", "field"), CHARGERS)
async def test_reserve_now_with_a_bad_expiry_is_422_and_not_sent(
    hub: Hub, identity: str, protocol: str, field: str
) -> None:
    """Issue 13 (outgoing CALLs): a reserve-now whose expiry is not an RFC 3339 date-time is answered 422 with
    one message naming the OCPP field, and the charger receives no CALL for it; a valid one is sent."""
    client = await _charger(hub, identity, protocol)
    async with api_client(hub) as api:
        r = await api.post(f"/api/chargers/{identity}/commands/reserve-now", json=_reserve(BAD))
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert isinstance(detail, str) and f"{field}: {BAD!r}" in detail and "date-time" in detail
        r = await api.post(f"/api/chargers/{identity}/commands/reserve-now", json=_reserve(GOOD))
        assert r.status_code == 200, r.text
    # the charger's first CALL is the valid one: the invalid one was never sent (frames arrive in order)
    sent = await asyncio.wait_for(client.incoming.get(), 5)
    assert sent[2] == "ReserveNow" and sent[3][field] == GOOD
    assert client.incoming.empty()
    await client.close()


@pytest.mark.parametrize(("identity", "protocol", "field"), CHARGERS)
async def test_raw_call_with_an_invalid_payload_is_422_and_not_sent(
    hub: Hub, identity: str, protocol: str, field: str
) -> None:
    """Issue 13 (outgoing CALLs): the raw ``call/{action}`` endpoint is held to the same schema, formats
    included: a bad date-time, an idTag over its CiString length, a missing field and an unknown action are 422
    naming the field, and none reaches the charger; a valid raw Reset is sent."""
    client = await _charger(hub, identity, protocol)
    if protocol == "ocpp1.6":
        bad = {"connectorId": 1, "expiryDate": BAD, "idTag": "AABBCC01", "reservationId": 7}
        too_long = {**bad, "expiryDate": GOOD, "idTag": "x" * 21}
        valid_reset = {"type": "Hard"}
    else:
        bad = {"id": 7, "expiryDateTime": BAD, "idToken": {"idToken": "AABBCC01", "type": "ISO14443"}}
        too_long = {**bad, "expiryDateTime": GOOD, "idToken": {"idToken": "x" * 37, "type": "ISO14443"}}
        valid_reset = {"type": "Immediate"}
    cases = [
        ("ReserveNow", bad, field),
        ("ReserveNow", too_long, "idTag" if protocol == "ocpp1.6" else "idToken/idToken"),
        ("ReserveNow", {}, "required property"),
        ("NoSuchAction", {}, "NoSuchAction is not an OCPP"),
    ]
    async with api_client(hub) as api:
        for action, payload, named in cases:
            r = await api.post(f"/api/chargers/{identity}/call/{action}", json=payload)
            assert r.status_code == 422, (action, payload, r.text)
            assert named in r.json()["detail"], r.text
        r = await api.post(f"/api/chargers/{identity}/call/Reset", json=valid_reset)
        assert r.status_code == 200, r.text
    sent = await asyncio.wait_for(client.incoming.get(), 5)
    assert sent[2] == "Reset" and sent[3] == valid_reset
    assert client.incoming.empty()
    await client.close()


@pytest.mark.parametrize(
    "value",
    [BAD, "2026-12-01T10:00:00", "2026-13-01T10:00:00Z", "2026-02-30T10:00:00Z", "2026-12-01T25:00:00Z", ""],
)
def test_date_times_must_be_rfc3339(value: str) -> None:
    """Issue 13 (outgoing CALLs): an outgoing date-time is RFC 3339 with an offset and a real date and time;
    everything else raises InvalidCall naming the field (build() and validate_call alike)."""
    with pytest.raises(InvalidCall, match="expiryDate"):
        build("reserve-now", "1.6", _reserve(value))
    with pytest.raises(InvalidCall, match="expiryDateTime"):
        build("reserve-now", "2.0.1", _reserve(value))


@pytest.mark.parametrize(
    "value",
    [GOOD, "2026-12-01t10:00:00z", "2026-12-01T10:00:00.123456789+01:00", "2026-12-01T10:00:00-05:30"],
)
def test_rfc3339_date_times_pass(value: str) -> None:
    """Issue 13 (outgoing CALLs): the RFC 3339 forms (any fraction, Z or an offset) are valid and built."""
    assert build("reserve-now", "1.6", _reserve(value))[1]["expiryDate"] == value
    validate_call("2.0.1", "ReserveNow", build("reserve-now", "2.0.1", _reserve(value))[1])


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_ocpi_profile_start_without_offset_is_sent_as_rfc3339(version: str) -> None:
    """Issue 13 (outgoing CALLs): an OCPI ChargingProfile's start_date_time without an offset (UTC in OCPI)
    becomes an RFC 3339 startSchedule with ``Z``, so the SetChargingProfile it builds is valid and sent."""
    from ocpi.gateway_adapter import ocpp_profile

    profile = {
        "start_date_time": "2026-12-01T10:00:00",
        "charging_rate_unit": "W",
        "charging_profile_period": [{"start_period": 0, "limit": 11000}],
    }
    body = ocpp_profile(version, profile, 5, "42")
    schedule = body["chargingSchedule"] if version == "1.6" else body["chargingSchedule"][0]
    assert schedule["startSchedule"] == "2026-12-01T10:00:00Z"
    action, _ = build("set-charging-profile", version, {"evse_id": 1, "profile": body})
    assert action == "SetChargingProfile"
