"""OCPP 2.0.1 over a real websocket: TransactionEvent sessions, signed meter values, out-of-order events."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import EVSE, ChargerEvent, ChargingSession, MeterValue, PricingState, SessionStatus
from tests.gateway.conftest import T0, Seed, iso, open_client

SIGNED = "AP///8BAAAAAABkAAAAAAAA\u00e9=="


def te(kind, tx, ts, seq, *, values=(), token=None, reason=None, evse=1, trigger="MeterValuePeriodic"):
    payload = {
        "eventType": kind, "timestamp": iso(ts), "triggerReason": trigger, "seqNo": seq,
        "transactionInfo": {"transactionId": tx}, "evse": {"id": evse, "connectorId": 1},
    }  # fmt: skip
    if reason:
        payload["transactionInfo"]["stoppedReason"] = reason
    if token:
        payload["idToken"] = {"idToken": token, "type": "ISO14443"}
    if values:
        payload["meterValue"] = list(values)
    return payload


def reg(ts, kwh, context="Sample.Periodic", signed=None):
    sv = {"value": kwh, "context": context, "measurand": "Energy.Active.Import.Register",
          "unitOfMeasure": {"unit": "kWh"}}  # fmt: skip
    if signed:
        sv["signedMeterValue"] = {"signedMeterData": signed, "signingMethod": "ECDSA", "encodingMethod": "OCMF",
                                  "publicKey": "PK"}  # fmt: skip
    return {"timestamp": iso(ts), "sampledValue": [sv]}


async def _session(db: Database, tx: str) -> ChargingSession:
    async with db.session() as db_session:
        return await db_session.scalar(select(ChargingSession).where(ChargingSession.transaction_id == tx))


async def test_full_session_v201(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    assert c.ws.subprotocol == "ocpp2.0.1"
    boot = await c.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
        "model": "M2", "vendorName": "Volt", "serialNumber": "S2", "firmwareVersion": "2.0"}})  # fmt: skip
    assert boot["status"] == "Accepted"
    await c.ok("StatusNotification", {"timestamp": iso(T0), "connectorStatus": "Occupied", "evseId": 1,
                                      "connectorId": 1})  # fmt: skip
    assert (await c.ok("Authorize", {"idToken": {"idToken": "AABBCC01", "type": "ISO14443"}}))["idTokenInfo"][
        "status"
    ] == "Accepted"
    started = await c.ok("TransactionEvent", te("Started", "TX-A", T0, 0, token="AABBCC01", trigger="Authorized",
                                                values=[reg(T0, 12.5, "Transaction.Begin")]))  # fmt: skip
    assert started["idTokenInfo"]["status"] == "Accepted"
    for i in (1, 2):
        await c.ok("TransactionEvent", te("Updated", "TX-A", T0 + timedelta(minutes=i), i,
                                          values=[reg(T0 + timedelta(minutes=i), 12.5 + i)]))  # fmt: skip
    end = T0 + timedelta(minutes=3)
    await c.ok("TransactionEvent", te("Ended", "TX-A", end, 3, reason="EVDisconnected", trigger="EVDeparted",
                                      values=[reg(end, 15.75, "Transaction.End", SIGNED)]))  # fmt: skip
    await c.ok("NotifyEvent", {"generatedAt": iso(T0), "seqNo": 0, "eventData": [{
        "eventId": 1, "timestamp": iso(T0), "trigger": "Alerting", "actualValue": "x", "eventNotificationType":
        "HardWiredNotification", "component": {"name": "EVSE"}, "variable": {"name": "Problem"}}]})  # fmt: skip
    await c.ok("FirmwareStatusNotification", {"status": "Installed"})
    await c.ok("FirmwareStatusNotification", {"status": "Installed"})  # replay: stored once
    await c.close()
    sess = await _session(db, "TX-A")
    assert sess.status == SessionStatus.COMPLETED and sess.pricing_state == PricingState.PENDING
    assert sess.meter_start_wh == Decimal("12500") and sess.meter_stop_wh == Decimal("15750")
    assert sess.energy_wh == Decimal("3250") and sess.flags == []
    assert sess.signed_meter_data == SIGNED and sess.token_id == seeded.fleet_token_id
    assert sess.evse_pk == seeded.evse_pks[2] and sess.stop_reason == "EVDisconnected"
    async with db.session() as db_session:
        events = (await db_session.scalars(select(ChargerEvent.action).order_by(ChargerEvent.id))).all()
        evse = await db_session.get(EVSE, seeded.evse_pks[2])
    assert events == ["NotifyEvent", "FirmwareStatusNotification"]
    assert evse.status == "CHARGING"


async def test_out_of_order_events_and_missing_meter_stop(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    # offline queue delivered in the wrong order: Updated, then Ended without a Transaction.End value, then Started
    await c.ok("TransactionEvent", te("Updated", "TX-B", T0 + timedelta(minutes=5), 1,
                                      values=[reg(T0 + timedelta(minutes=5), 2)]))  # fmt: skip
    await c.ok("TransactionEvent", te("Ended", "TX-B", T0 + timedelta(minutes=9), 2, reason="Local"))
    sess = await _session(db, "TX-B")
    assert "UNKNOWN_TRANSACTION" in sess.flags and "METER_STOP_MISSING" in sess.flags
    await c.ok("TransactionEvent", te("Started", "TX-B", T0, 0, token="ROAM0001",
                                      values=[reg(T0, 1, "Transaction.Begin")]))  # fmt: skip
    await c.ok("TransactionEvent", te("Updated", "TX-B", T0 + timedelta(minutes=7), 3,
                                      values=[reg(T0 + timedelta(minutes=7), 3)]))  # fmt: skip
    # and the same again (replay)
    await c.ok("TransactionEvent", te("Updated", "TX-B", T0 + timedelta(minutes=7), 3,
                                      values=[reg(T0 + timedelta(minutes=7), 3)]))  # fmt: skip
    await c.close()
    sess = await _session(db, "TX-B")
    assert sess.start_time == T0 and sess.end_time == T0 + timedelta(minutes=9)
    assert "UNKNOWN_TRANSACTION" not in sess.flags and "METER_STOP_MISSING" in sess.flags
    assert sess.meter_stop_wh == Decimal(3000) and sess.energy_wh == Decimal(2000)
    assert sess.token_id is not None
    async with db.session() as db_session:
        n = await db_session.scalar(
            select(func.count()).select_from(MeterValue).where(MeterValue.session_id == sess.id)
        )
    assert n == 3


async def test_unknown_action_and_pending_boot(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    ans = await c.call("FlyToTheMoon", {})
    assert ans[0] == 4 and ans[2] == "NotImplemented"
    await c.close()
    c = await open_client(gateway, "CPPEND", "ocpp1.6")
    boot = await c.ok("BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"})
    assert boot["status"] == "Pending"
    ans = await c.call("FlyToTheMoon", {})
    assert ans[0] == 4 and ans[2] == "NotImplemented"
    await c.close()
