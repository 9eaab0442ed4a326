"""Refused upgrades and bad frames: the right error or a disconnect, nothing stored changes, others unaffected."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import ChargePoint, ChargingSession
from tests.gateway.conftest import T0, Seed, basic, iso, open_client, wait_until


async def _refused(gw: Gateway, identity: str, protocols: list[str] | None, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as info:
        await connect(
            f"ws://127.0.0.1:{gw.port}/ocpp/{identity}", subprotocols=protocols, additional_headers=headers
        )
    return info.value.response.status_code


async def test_upgrade_refusals(gateway: Gateway, db: Database, seeded: Seed) -> None:
    assert await _refused(gateway, "NOPE", ["ocpp1.6"], basic("NOPE")) == 404
    assert await _refused(gateway, "CP16", ["ocpp1.6"], basic("CP16", "wrong")) == 401
    assert await _refused(gateway, "CP16", ["ocpp1.6"], {}) == 401
    assert await _refused(gateway, "CP16", ["ocpp1.6"], basic("CP201")) == 401  # someone else's credentials
    assert await _refused(gateway, "CP16", None, basic("CP16")) == 400
    assert await _refused(gateway, "CP16", ["ocpp1.5"], basic("CP16")) == 400
    with pytest.raises(InvalidStatus):
        await connect(f"ws://127.0.0.1:{gateway.port}/other/CP16", subprotocols=["ocpp1.6"])
    async with db.session() as db_session:
        assert await db_session.scalar(select(func.count()).select_from(ChargePoint)) == 3
        assert (
            await db_session.scalar(select(ChargePoint.status).where(ChargePoint.identity == "CP16"))
            == "offline"
        )
    # profile 2 needs TLS: refused on ws://
    async with db.session() as db_session:
        cp = await db_session.scalar(select(ChargePoint).where(ChargePoint.identity == "CP16"))
        cp.security_profile = 2
    assert await _refused(gateway, "CP16", ["ocpp1.6"], basic("CP16")) == 403


async def test_bad_frames_v16(gateway: Gateway, db: Database, seeded: Seed) -> None:
    other = await open_client(gateway, "CP201", "ocpp2.0.1")
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 0,
                                          "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    assert (await c.raw("this is not json", "-1"))[2] == "FormationViolation"
    assert (await c.raw('{"not": "an array"}', "-1"))[2] == "FormationViolation"
    assert (await c.raw('[2, "a1", "Heartbeat"]', "a1"))[2] == "FormationViolation"
    assert (await c.raw('[7, "a2", "Heartbeat", {}]', "a2"))[2] == "PropertyConstraintViolation"
    # schema: wrong type, missing field, bad enum, unknown property
    assert (await c.call("StartTransaction", {"connectorId": "one", "idTag": "X", "meterStart": 0,
                                              "timestamp": iso(T0)}))[2] == "TypeConstraintViolation"  # fmt: skip
    assert (await c.call("StopTransaction", {"transactionId": tx, "timestamp": iso(T0)}))[2] in (
        "OccurenceConstraintViolation", "ProtocolError")  # fmt: skip
    assert (await c.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                "status": "Sleeping"}))[2] == "PropertyConstraintViolation"  # fmt: skip
    assert (await c.call("Heartbeat", {"extra": 1}))[2] == "FormationViolation"
    assert (await c.call("StopTransaction", {"transactionId": tx, "meterStop": 5,
                                             "timestamp": "yesterday"}))[2] == "TypeConstraintViolation"  # fmt: skip
    assert (await c.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
        {"timestamp": iso(T0), "sampledValue": [{"value": "12abc"}]}]}))[2] == "PropertyConstraintViolation"  # fmt: skip
    # values the NUMERIC(20, 6) column cannot hold are refused before they reach a batch shared with others
    for absurd in ("1E+30", "-100000000000000", "NaN", "Infinity"):
        assert (await c.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": iso(T0), "sampledValue": [{"value": absurd}]}]}))[2] == "PropertyConstraintViolation"  # fmt: skip
    assert await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
        {"timestamp": iso(T0), "sampledValue": [{"value": "99999999999999.5"}]}]}) == {}  # fmt: skip
    # nothing of the above changed the stored session
    async with db.session() as db_session:
        sess = await db_session.scalar(select(ChargingSession))
        assert sess.end_time is None and sess.status == "ACTIVE"
    # the other charger never noticed, this one still works
    assert "currentTime" in await other.ok("Heartbeat", {})
    assert "currentTime" in await c.ok("Heartbeat", {})
    # a binary frame: disconnected
    await c.ws.send(b"\x00\x01")
    assert await c.wait_closed() == 1003
    assert "currentTime" in await other.ok("Heartbeat", {})
    await other.close()


async def test_bad_frames_v201_and_size_limit(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP201", "ocpp2.0.1", max_size=None)
    assert (await c.raw("{{{", "-1"))[2] == "RpcFrameworkError"
    assert (await c.raw('[5, "b1", {}]', "b1"))[2] == "MessageTypeNotSupported"
    ans = await c.call("TransactionEvent", {"eventType": "Started", "timestamp": iso(T0)})
    assert ans[2] == "OccurrenceConstraintViolation"
    assert (await c.call("Heartbeat", {"x": 1}))[2] == "FormatViolation"
    await c.ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "A" * 200_000}]))
    assert await c.wait_closed() == 1009
    # the gateway is fine afterwards
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    assert "currentTime" in await c.ok("Heartbeat", {})
    await c.close()


async def test_flood_disconnects(db: Database, seeded: Seed, database_url: str) -> None:
    from tests.gateway.conftest import gateway_settings

    gw = Gateway(gateway_settings(database_url, ocpp_rate_limit=5, ocpp_rate_burst=10), db, "node-f")
    await gw.start("127.0.0.1", 0)
    try:
        c = await open_client(gw, "CP16", "ocpp1.6")
        with contextlib.suppress(ConnectionClosed):
            for i in range(100):
                await c.ws.send(json.dumps([2, f"f{i}", "Heartbeat", {}]))
        assert await c.wait_closed() == 1008
        other = await open_client(gw, "CP201", "ocpp2.0.1")
        assert "currentTime" in await other.ok("Heartbeat", {})
        await other.close()
    finally:
        await gw.stop()


async def test_reconnect_replaces_old_connection(gateway: Gateway, db: Database, seeded: Seed) -> None:
    first = await open_client(gateway, "CP16", "ocpp1.6")
    second = await open_client(gateway, "CP16", "ocpp1.6")
    assert await first.wait_closed() == 1000
    assert "currentTime" in await second.ok("Heartbeat", {})
    assert gateway.connections["CP16"].ws.remote_address == second.ws.local_address
    assert await _status(db, "CP16") == "online"
    await second.close()
    await wait_until(lambda: _is_offline(db, "CP16"), "charger marked offline after disconnect")


async def _status(db: Database, identity: str) -> str | None:
    async with db.session() as db_session:
        return await db_session.scalar(select(ChargePoint.status).where(ChargePoint.identity == identity))


async def _is_offline(db: Database, identity: str) -> bool:
    return await _status(db, identity) == "offline"


async def test_missed_heartbeats_mark_offline(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP16", "ocpp1.6")
    await c.ok("Heartbeat", {})
    gateway.offline_after = 30.0
    assert await _status(db, "CP16") == "online"
    await gateway.sweep()  # heard just now: stays connected
    assert "currentTime" in await c.ok("Heartbeat", {})
    gateway.connections["CP16"].last_heard -= 31.0  # then silent for longer than offline_after
    await gateway.sweep()
    assert await c.wait_closed() == 4000
    await wait_until(lambda: _is_offline(db, "CP16"), "charger marked offline after missed heartbeats")


async def test_sweep_refreshes_last_seen_of_chargers_heard(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    c = await open_client(gateway, "CP16", "ocpp1.6")
    await c.ok("Heartbeat", {})
    async with db.session() as db_session:
        await db_session.execute(update(ChargePoint).values(last_seen=T0))
    await gateway.sweep()
    async with db.session() as db_session:
        seen = dict((await db_session.execute(select(ChargePoint.identity, ChargePoint.last_seen))).all())
    assert seen["CP16"] > T0 + timedelta(days=1)  # heard since the last sweep: refreshed
    assert seen["CP201"] == T0  # not connected: untouched
    await c.close()
