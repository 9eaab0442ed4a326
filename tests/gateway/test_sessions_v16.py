"""OCPP 1.6 sessions end to end over a real websocket, and the idempotency cases real chargers cause."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import EVSE, ChargePoint, ChargingSession, MeterValue, PricingState, SessionStatus
from tests.gateway.conftest import T0, Seed, iso, open_client

OCMF = 'OCMF|{"FV":"1.0","GI":"ABC","RD":[{"TM":"2026-03-02T08:30:00,000+0000 S","RV":"1.5","RI":"1-b:1.8.0"}]}|{"SD":"3045"}'


def mv(ts, wh, context="Sample.Periodic", **extra):
    sv = {
        "value": str(wh),
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "unit": "Wh",
        **extra,
    }
    return {"timestamp": iso(ts), "sampledValue": [sv]}


async def _session(db: Database, tx: int | str) -> ChargingSession:
    async with db.session() as db_session:
        return await db_session.scalar(
            select(ChargingSession).where(ChargingSession.transaction_id == str(tx))
        )


async def _count_mv(db: Database, session_id: int) -> int:
    async with db.session() as db_session:
        return await db_session.scalar(
            select(func.count()).select_from(MeterValue).where(MeterValue.session_id == session_id)
        )


async def test_full_session_v16(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP16", "ocpp1.6")
    assert c.ws.subprotocol == "ocpp1.6"
    boot = await c.ok("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "W1",
                                          "chargePointSerialNumber": "SN1", "firmwareVersion": "1.2.3"})  # fmt: skip
    assert boot["status"] == "Accepted" and boot["interval"] == 60
    assert "currentTime" in await c.ok("Heartbeat", {})
    await c.ok("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging",
                                      "timestamp": iso(T0)})  # fmt: skip
    auth = await c.ok("Authorize", {"idTag": "AABBCC01"})
    assert auth["idTagInfo"]["status"] == "Accepted"
    start = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000,
                                            "timestamp": iso(T0)})  # fmt: skip
    tx = start["transactionId"]
    assert isinstance(tx, int) and start["idTagInfo"]["status"] == "Accepted"
    for minute in (1, 2, 3):
        await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx,
                                   "meterValue": [mv(T0 + timedelta(minutes=minute), 1000 + 100 * minute)]})  # fmt: skip
    stop = await c.ok("StopTransaction", {
        "transactionId": tx, "meterStop": 1500, "timestamp": iso(T0 + timedelta(minutes=5)), "idTag": "AABBCC01",
        "reason": "EVDisconnected",
        "transactionData": [mv(T0 + timedelta(minutes=5), OCMF, "Transaction.End", format="SignedData")],
    })  # fmt: skip
    assert stop["idTagInfo"]["status"] == "Accepted"
    await c.close()

    sess = await _session(db, tx)
    assert sess.status == SessionStatus.COMPLETED and sess.pricing_state == PricingState.PENDING
    assert sess.start_time == T0 and sess.end_time == T0 + timedelta(minutes=5)
    assert sess.meter_start_wh == 1000 and sess.meter_stop_wh == 1500 and sess.energy_wh == Decimal(500)
    assert sess.token_id == seeded.fleet_token_id and sess.evse_pk == seeded.evse_pks[0]
    assert sess.connector_pk is not None and sess.location_id == seeded.location_id
    assert sess.signed_meter_data == OCMF  # byte-exact
    assert sess.stop_reason == "EVDisconnected" and sess.flags == []
    assert len(sess.session_uid) == 36
    async with db.session() as db_session:
        cp = await db_session.scalar(select(ChargePoint).where(ChargePoint.identity == "CP16"))
        evse = await db_session.get(EVSE, seeded.evse_pks[0])
    assert (cp.vendor, cp.model, cp.serial_number, cp.firmware_version) == ("ACME", "W1", "SN1", "1.2.3")
    assert evse.status == "CHARGING" and evse.last_updated == T0


async def test_replays_are_idempotent(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP16", "ocpp1.6")
    start = {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 0, "timestamp": iso(T0)}
    tx = (await c.ok("StartTransaction", start))["transactionId"]
    assert (await c.ok("StartTransaction", start, uid="again"))["transactionId"] == tx  # same message twice
    values = {"connectorId": 1, "transactionId": tx, "meterValue": [mv(T0 + timedelta(minutes=2), 200)]}
    await c.ok("MeterValues", values)
    await c.ok("MeterValues", values)
    # out of order: an older sample after a newer one
    await c.ok(
        "MeterValues",
        {"connectorId": 1, "transactionId": tx, "meterValue": [mv(T0 + timedelta(minutes=1), 100)]},
    )
    await c.close()
    # reconnect and replay everything, then stop twice
    c = await open_client(gateway, "CP16", "ocpp1.6")
    assert (await c.ok("StartTransaction", start))["transactionId"] == tx
    await c.ok("MeterValues", values)
    stop = {"transactionId": tx, "meterStop": 300, "timestamp": iso(T0 + timedelta(minutes=3))}
    await c.ok("StopTransaction", stop)
    await c.ok("StopTransaction", stop)
    await c.close()
    sess = await _session(db, tx)
    assert await _count_mv(db, sess.id) == 2
    assert sess.energy_wh == 300
    async with db.session() as db_session:
        assert await db_session.scalar(select(func.count()).select_from(ChargingSession)) == 1


async def test_unknown_stop_is_stored_and_flagged(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP16", "ocpp1.6")
    later = T0 + timedelta(hours=5)
    await c.ok("StopTransaction", {"transactionId": 987654, "meterStop": 5000, "timestamp": iso(later),
                                   "transactionData": [mv(T0, 1000, "Transaction.Begin")]})  # fmt: skip
    await c.close()
    sess = await _session(db, 987654)
    assert sess is not None and "UNKNOWN_TRANSACTION" in sess.flags
    assert sess.start_time == T0 and sess.end_time == later and sess.energy_wh == 4000
    assert sess.pricing_state == PricingState.PENDING


async def test_meter_reset_and_offline_transaction(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP16", "ocpp1.6")
    # a transaction that happened hours ago, delivered now: the charger's timestamps are the truth
    tx = (await c.ok("StartTransaction", {"connectorId": 2, "idTag": "ROAM0001", "meterStart": 90000,
                                          "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    await c.ok("MeterValues", {"connectorId": 2, "transactionId": tx, "meterValue": [
        mv(T0 + timedelta(minutes=10), 90500), mv(T0 + timedelta(minutes=20), 200)]})  # register reset  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 700,
                                   "timestamp": iso(T0 + timedelta(minutes=30))})  # fmt: skip
    await c.close()
    sess = await _session(db, tx)
    assert sess.energy_wh == 500 + 200 + 500
    assert "METER_RESET" in sess.flags
    assert sess.start_time == T0 and sess.evse_pk == seeded.evse_pks[1]


async def test_reboot_mid_session(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 10,
                                          "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    await c.ok(
        "MeterValues",
        {"connectorId": 1, "transactionId": tx, "meterValue": [mv(T0 + timedelta(minutes=1), 60)]},
    )
    await c.ws.close()  # power loss
    c = await open_client(gateway, "CP16", "ocpp1.6")
    await c.ok("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "W1"})
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 80, "reason": "Reboot",
                                   "timestamp": iso(T0 + timedelta(minutes=4))})  # fmt: skip
    await c.close()
    sess = await _session(db, tx)
    assert sess.energy_wh == 70 and sess.stop_reason == "Reboot" and sess.status == SessionStatus.COMPLETED


async def test_authorization_rules(gateway: Gateway, db: Database, seeded: Seed) -> None:
    from cpo_gateway.authorization import RealTimeAuthorizer
    from kernel.models import Cdr

    c = await open_client(gateway, "CP16", "ocpp1.6")

    async def status(tag: str) -> str:
        return (await c.ok("Authorize", {"idTag": tag}))["idTagInfo"]["status"]

    assert await status("aabbcc01") == "Accepted"  # uid comparison ignores case
    assert await status("ROAM0001") == "Accepted"
    assert await status("BLOCKED1") == "Blocked"
    assert await status("NOBODY") == "Invalid"

    class RealTime:
        async def authorize(self, uid, token_type, **kw):
            from cpo_gateway.authorization import AuthResult

            return (
                AuthResult("Accepted", None, "ok by eMSP", auth_method="AUTH_REQUEST")
                if uid == "RT1"
                else None
            )

    assert isinstance(RealTime(), RealTimeAuthorizer)
    gateway.services.realtime_authorizer = RealTime()
    assert await status("RT1") == "Accepted"
    assert await status("NOBODY") == "Invalid"
    # the monthly limit (100 EUR) is enforced: CDRs of this month count
    from kernel.timeutil import utcnow

    now = utcnow()
    async with db.session() as db_session:
        sess = ChargingSession(session_uid="u1", charge_point_id=1, transaction_id="x", cpo_id=seeded.cpo_id,
                               start_time=now, last_updated=now)  # fmt: skip
        cp = await db_session.scalar(select(ChargePoint).where(ChargePoint.identity == "CP16"))
        sess.charge_point_id = cp.id
        db_session.add(sess)
        await db_session.flush()
        db_session.add(Cdr(cdr_uid="C1", session_id=sess.id, cpo_id=seeded.cpo_id, token_id=seeded.fleet_token_id,
                  currency="EUR", start_date_time=now, end_date_time=now, total_energy_kwh=Decimal(1),
                  total_time_hours=Decimal(1), total_cost_excl_vat=Decimal("90"),
                  total_cost_incl_vat=Decimal("99.99"), data={}))  # fmt: skip
    assert await status("AABBCC01") == "Accepted"
    async with db.session() as db_session:
        db_session.add(Cdr(cdr_uid="C2", session_id=sess.id, revision=1, cpo_id=seeded.cpo_id,
                  token_id=seeded.fleet_token_id, currency="EUR", start_date_time=now, end_date_time=now,
                  total_energy_kwh=Decimal(0), total_time_hours=Decimal(0), total_cost_excl_vat=Decimal("0.01"),
                  total_cost_incl_vat=Decimal("0.01"), data={}))  # fmt: skip
    assert await status("AABBCC01") == "Blocked"
    await c.close()
    c201 = await open_client(gateway, "CP201", "ocpp2.0.1")
    answer = await c201.ok("Authorize", {"idToken": {"idToken": "AABBCC01", "type": "ISO14443"}})
    assert answer["idTokenInfo"]["status"] == "NoCredit"
    await c201.close()
