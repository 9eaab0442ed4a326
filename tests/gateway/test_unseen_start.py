"""Issue 12, M5 "1.6 StopTransaction for a transaction the hub never saw: stored, never priced": the session of
a stop whose start was never seen gets its connector (a MeterValues of the transaction named it; the charger
has one connector; all its connectors have the same tariffs) and its start energy (the Begin reading of
transactionData) and is priced; when either cannot be known it is FAILED with the reason, never silently."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from cpo_gateway.server import Gateway
from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Connector, PricingState
from tariffs.rating import rate_pending
from tests.gateway.conftest import T0, Seed, iso, open_client

END = T0 + timedelta(hours=1)


def mv(ts: Any, wh: int, context: str = "Sample.Periodic") -> dict[str, Any]:
    sv = {"value": str(wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"timestamp": iso(ts), "sampledValue": [sv]}


def tariff(tariff_id: str, price: str) -> dict[str, Any]:
    return {"country_code": "NL", "party_id": "ABC", "id": tariff_id, "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": price, "step_size": 1}]}],
            "last_updated": "2026-01-01T00:00:00Z"}  # fmt: skip


async def _tariffs(db: Database, seeded: Seed, first: str, second: str) -> None:
    """Connector of CP16's EVSE 1 priced by ``first``, of EVSE 2 by ``second`` (T1 0.30, T2 0.50 per kWh)."""
    async with db.session() as s:
        await prov.import_tariff(s, tariff("T1", "0.30"))
        await prov.import_tariff(s, tariff("T2", "0.50"))
        for evse_pk, tid in zip(seeded.evse_pks[:2], (first, second), strict=True):
            for connector in (await s.scalars(select(Connector).where(Connector.evse_pk == evse_pk))).all():
                connector.tariff_ids = [tid]


async def _session(db: Database, tx: int) -> ChargingSession:
    async with db.session() as s:
        found = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == str(tx)))
        assert found is not None
        return found


async def _cdr(db: Database, session_id: int) -> Cdr:
    assert await rate_pending(db, ()) == 1
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.session_id == session_id))
        assert cdr is not None
        return cdr


async def test_connector_from_meter_values(gateway: Gateway, db: Database, seeded: Seed) -> None:
    await _tariffs(db, seeded, "T1", "T2")
    c = await open_client(gateway, "CP16", "ocpp1.6")
    await c.ok("MeterValues", {"connectorId": 2, "transactionId": 777,
                               "meterValue": [mv(T0 + timedelta(minutes=10), 1500)]})  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": 777, "meterStop": 5000, "timestamp": iso(END),
                                   "transactionData": [mv(T0, 1000, "Transaction.Begin"),
                                                       mv(END, 5000, "Transaction.End")]})  # fmt: skip
    await c.close()
    sess = await _session(db, 777)
    assert sess.evse_pk == seeded.evse_pks[1] and sess.energy_wh == 4000
    cdr = await _cdr(db, sess.id)
    assert cdr.total_energy_kwh == Decimal("4") and cdr.total_cost_excl_vat == Decimal("2.00")  # T2


async def test_connector_from_shared_tariffs(gateway: Gateway, db: Database, seeded: Seed) -> None:
    await _tariffs(db, seeded, "T1", "T1")
    c = await open_client(gateway, "CP16", "ocpp1.6")
    await c.ok("StopTransaction", {"transactionId": 778, "meterStop": 5000, "timestamp": iso(END),
                                   "transactionData": [mv(T0, 1000, "Transaction.Begin")]})  # fmt: skip
    await c.close()
    sess = await _session(db, 778)
    assert sess.pricing_state == PricingState.PENDING and sess.evse_pk is not None
    assert "CONNECTOR_INFERRED" in sess.flags
    cdr = await _cdr(db, sess.id)
    assert cdr.total_energy_kwh == Decimal("4") and cdr.total_cost_excl_vat == Decimal("1.20")  # T1


async def test_unknown_connector_fails_with_reason(gateway: Gateway, db: Database, seeded: Seed) -> None:
    await _tariffs(db, seeded, "T1", "T2")
    c = await open_client(gateway, "CP16", "ocpp1.6")
    await c.ok("StopTransaction", {"transactionId": 779, "meterStop": 5000, "timestamp": iso(END),
                                   "transactionData": [mv(T0, 1000, "Transaction.Begin")]})  # fmt: skip
    await c.close()
    sess = await _session(db, 779)
    assert sess.pricing_state == PricingState.FAILED
    assert sess.pricing_error is not None and "connector" in sess.pricing_error
    assert await rate_pending(db, ()) == 0


async def test_unknown_meter_start_fails_with_reason(gateway: Gateway, db: Database, seeded: Seed) -> None:
    await _tariffs(db, seeded, "T1", "T2")
    c = await open_client(gateway, "CP16", "ocpp1.6")
    await c.ok("MeterValues", {"connectorId": 1, "transactionId": 780,
                               "meterValue": [mv(T0 + timedelta(minutes=10), 2000)]})  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": 780, "meterStop": 5000, "timestamp": iso(END)})
    await c.close()
    sess = await _session(db, 780)
    assert sess.pricing_state == PricingState.FAILED
    assert sess.pricing_error is not None and "meter start" in sess.pricing_error
