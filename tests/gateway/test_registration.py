"""Chargers whose registration is not Accepted (Pending/Rejected): BootNotification is answered, other requests
get CALLERROR SecurityError and change nothing, except what the central system asked a Pending charger for
(TriggerMessage, 2.0.1 GetBaseReport/GetReport); 1.6 Heartbeats are answered. Once the operator accepts the
charger, its next BootNotification is Accepted and everything is handled again."""

from __future__ import annotations

from sqlalchemy import func, select, update

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import ChargePoint, ChargerEvent, ChargerMeterValue, ChargingSession, RegistrationStatus
from tests.gateway.conftest import T0, Seed, iso, open_client

BOOT16 = {"chargePointVendor": "ACME", "chargePointModel": "W1"}
BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
STATUS16 = {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": iso(T0)}
STATUS201 = {"timestamp": iso(T0), "connectorStatus": "Available", "evseId": 1, "connectorId": 1}


async def _set_status(db: Database, identity: str, status: RegistrationStatus) -> None:
    async with db.session() as db_session:
        await db_session.execute(
            update(ChargePoint).where(ChargePoint.identity == identity).values(registration_status=status)
        )


async def _count(db: Database, model: type) -> int:
    async with db.session() as db_session:
        return await db_session.scalar(select(func.count()).select_from(model))


def _security_error(answer: list) -> bool:
    return answer[0] == 4 and answer[2] == "SecurityError"


async def test_pending_v16(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CPPEND", "ocpp1.6")
    c.auto_reply["TriggerMessage"] = {"status": "Accepted"}
    boot = await c.ok("BootNotification", BOOT16)
    assert boot["status"] == "Pending" and boot["interval"] == 60
    assert "currentTime" in await c.ok("Heartbeat", {})
    refused = [
        await c.call("StatusNotification", STATUS16),
        await c.call(
            "StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 0, "timestamp": iso(T0)}
        ),
        await c.call(
            "MeterValues",
            {"connectorId": 0, "meterValue": [{"timestamp": iso(T0), "sampledValue": [{"value": "1"}]}]},
        ),
        await c.call("Authorize", {"idTag": "AABBCC01"}),
        await c.call("DataTransfer", {"vendorId": "X"}),
    ]
    assert all(_security_error(a) for a in refused), refused
    assert (await _count(db, ChargingSession), await _count(db, ChargerMeterValue)) == (0, 0)
    assert await _count(db, ChargerEvent) == 0

    # what the central system triggers is accepted, the rest still is not
    assert await gateway.send("CPPEND", "TriggerMessage", {"requestedMessage": "MeterValues"}) == {
        "status": "Accepted"
    }
    assert (await c.ok("MeterValues", {"connectorId": 0, "meterValue": [{"timestamp": iso(T0),
                                                                         "sampledValue": [{"value": "1"}]}]})) == {}  # fmt: skip
    assert await _count(db, ChargerMeterValue) == 1
    assert _security_error(await c.call("StatusNotification", STATUS16))
    await c.close()


async def test_pending_v201_then_accepted(gateway: Gateway, db: Database, seeded: Seed) -> None:
    await _set_status(db, "CP201", RegistrationStatus.PENDING)
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    c.auto_reply["GetBaseReport"] = {"status": "Accepted"}
    boot = await c.ok("BootNotification", BOOT201)
    assert boot["status"] == "Pending"
    for action, payload in (
        ("Heartbeat", {}),  # 2.0.1: only BootNotification (B02.FR.09)
        ("StatusNotification", STATUS201),
        ("NotifyReport", {"requestId": 1, "generatedAt": iso(T0), "seqNo": 0}),
        (
            "TransactionEvent",
            {
                "eventType": "Started",
                "timestamp": iso(T0),
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "T1"},
            },
        ),
    ):
        assert _security_error(await c.call(action, payload)), action
    assert await _count(db, ChargingSession) == 0

    answer = await gateway.send("CP201", "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
    assert answer == {"status": "Accepted"}
    assert await c.ok("NotifyReport", {"requestId": 7, "generatedAt": iso(T0), "seqNo": 0}) == {}
    assert await _count(db, ChargerEvent) == 1
    assert _security_error(await c.call("StatusNotification", STATUS201))

    # the operator accepts the charger: its next boot is Accepted and it is served normally
    await _set_status(db, "CP201", RegistrationStatus.ACCEPTED)
    assert (await c.ok("BootNotification", BOOT201))["status"] == "Accepted"
    assert await c.ok("StatusNotification", STATUS201) == {}
    assert "currentTime" in await c.ok("Heartbeat", {})
    await c.close()


async def test_rejected_gets_nothing_but_boot(gateway: Gateway, db: Database, seeded: Seed) -> None:
    await _set_status(db, "CP16", RegistrationStatus.REJECTED)
    c = await open_client(gateway, "CP16", "ocpp1.6")
    c.auto_reply["TriggerMessage"] = {"status": "Accepted"}
    boot = await c.ok("BootNotification", BOOT16)
    assert boot["status"] == "Rejected" and boot["interval"] == 60
    assert _security_error(await c.call("StatusNotification", STATUS16))
    # a trigger does not open the door for a Rejected charger
    await gateway.send("CP16", "TriggerMessage", {"requestedMessage": "StatusNotification"})
    assert _security_error(await c.call("StatusNotification", STATUS16))
    assert "currentTime" in await c.ok("Heartbeat", {})
    await c.close()
