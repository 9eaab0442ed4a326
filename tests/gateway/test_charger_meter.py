"""Meter values outside a transaction (1.6 MeterValues without transactionId, 2.0.1 MeterValues) are stored
per charger and EVSE, byte-exact for signed data, and a replay adds nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import ChargerMeterValue, ChargingSession, MeterValue
from tests.gateway.conftest import T0, Seed, iso, open_client

OCMF = 'OCMF|{"FV":"1.0","RD":[{"RV":"12.5","RI":"1-b:1.8.0"}]}|{"SD":"30"}'


async def _rows(db: Database) -> list[ChargerMeterValue]:
    async with db.session() as db_session:
        return list(
            (
                await db_session.scalars(
                    select(ChargerMeterValue).order_by(
                        ChargerMeterValue.ocpp_evse_id, ChargerMeterValue.timestamp, ChargerMeterValue.measurand,
                        ChargerMeterValue.phase,
                    )
                )
            ).all()
        )  # fmt: skip


async def _session_counts(db: Database) -> tuple[int, int]:
    async with db.session() as db_session:
        return (
            await db_session.scalar(select(func.count()).select_from(ChargingSession)),
            await db_session.scalar(select(func.count()).select_from(MeterValue)),
        )


async def test_v16_meter_values_without_transaction(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP16", "ocpp1.6")
    main_meter = {"connectorId": 0, "meterValue": [{"timestamp": iso(T0), "sampledValue": [
        {"value": "123456.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Clock"},
        {"value": OCMF, "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Clock",
         "format": "SignedData"},
        {"value": "230.1", "measurand": "Voltage", "unit": "V", "phase": "L1-N", "context": "Sample.Clock"},
        {"value": "229.8", "measurand": "Voltage", "unit": "V", "phase": "L2-N", "context": "Sample.Clock"},
    ]}]}  # fmt: skip
    connector = {"connectorId": 2, "meterValue": [{"timestamp": iso(T0 + timedelta(minutes=1)),
                                                   "sampledValue": [{"value": "7.5", "measurand": "Temperature",
                                                                     "unit": "Celsius", "location": "Body"}]}]}  # fmt: skip
    for _ in range(2):  # the second round is a replay
        assert await c.ok("MeterValues", main_meter) == {}
        assert await c.ok("MeterValues", connector) == {}
    await c.close()

    rows = await _rows(db)
    assert [(r.ocpp_evse_id, r.measurand, r.phase, r.value, r.unit) for r in rows] == [
        (0, "Energy.Active.Import.Register", "", Decimal("123456.5"), "Wh"),
        (0, "Voltage", "L1-N", Decimal("230.1"), "V"),
        (0, "Voltage", "L2-N", Decimal("229.8"), "V"),
        (2, "Temperature", "", Decimal("7.5"), "Celsius"),
    ]
    assert rows[0].signed_data == OCMF and rows[0].context == "Sample.Clock" and rows[0].timestamp == T0
    assert rows[0].evse_pk is None  # connector 0 is the charger, not an EVSE
    assert rows[3].evse_pk == seeded.evse_pks[1] and rows[3].location == "Body"
    assert await _session_counts(db) == (0, 0)  # no session invented


async def test_v201_meter_values_stored(gateway: Gateway, db: Database, seeded: Seed) -> None:
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    msg = {"evseId": 1, "meterValue": [{"timestamp": iso(T0), "sampledValue": [
        {"value": 12.5, "measurand": "Energy.Active.Import.Register", "context": "Sample.Periodic",
         "unitOfMeasure": {"unit": "kWh"},
         "signedMeterValue": {"signedMeterData": OCMF, "signingMethod": "ECDSA", "encodingMethod": "OCMF",
                              "publicKey": "PK"}},
        {"value": 11, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 3}},
    ]}]}  # fmt: skip
    station = {"evseId": 0, "meterValue": [{"timestamp": iso(T0), "sampledValue": [{"value": 99.25}]}]}
    for _ in range(2):
        assert await c.ok("MeterValues", msg) == {}
        assert await c.ok("MeterValues", station) == {}
    # a different timestamp is a new sample
    station["meterValue"][0]["timestamp"] = iso(T0 + timedelta(minutes=15))
    assert await c.ok("MeterValues", station) == {}
    await c.close()

    rows = await _rows(db)
    assert [(r.ocpp_evse_id, r.timestamp, r.measurand, r.value, r.unit) for r in rows] == [
        (0, T0, "Energy.Active.Import.Register", Decimal("99.25"), "Wh"),
        (0, T0 + timedelta(minutes=15), "Energy.Active.Import.Register", Decimal("99.25"), "Wh"),
        (1, T0, "Energy.Active.Import.Register", Decimal("12.5"), "kWh"),
        (1, T0, "Power.Active.Import", Decimal("11000"), "W"),
    ]
    assert rows[2].signed_data == OCMF and rows[2].evse_pk == seeded.evse_pks[2]
    assert await _session_counts(db) == (0, 0)
