"""Stored meter values mean one thing to the store, rating and the OCPI session (issue #12 "Money is right").

* M2: a 1.6 ``SignedData`` sample was read as a 0 Wh register reading (a false reset: energy came early,
  the rest of the charging time became PARKING); and a plain value was dropped when a signed-only sample of
  the same key had been stored first.
* M9: ``Current.Import`` samples never reached rating, so the spec's complex tariff example (TIME elements
  with ``max_current``/``min_current``) priced 6.25 instead of 9.00.
* M1(a): a ``Transaction.Begin`` reading stamped before the session start was not its baseline.
* M3: the OCPI session's derived charging periods sent a negative ENERGY for a meter reset.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import delete, select, text

from cpo_gateway.events import Sample, SessionStarted
from cpo_gateway.meter_rules import sample_rows
from cpo_gateway.server import Gateway
from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Connector, MeterValue, Party
from ocpi.render_objects import session_object
from tariffs.cdr_builder import load_inputs, meter_samples
from tariffs.rating import rate_pending
from tests.gateway.conftest import T0, Seed
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

EXAMPLES = Path(__file__).parents[1] / "fixtures" / "ocpi-examples"
MONDAY_0930_AMS = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)  # 09:30 Europe/Amsterdam (CET)


async def _stored(db: Database, session_id: int) -> list[tuple]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT timestamp, unit, value, signed_data FROM meter_values WHERE session_id = :sid"),
            {"sid": session_id},
        )
        return [tuple(r) for r in rows]


async def test_a_plain_value_and_a_signature_of_one_key_are_both_kept_in_either_order(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    """M2: message A plain 5000 Wh at T, message B SignedData at T (same measurand/context): one row, value
    5000 with the signature, whichever came first."""
    loaded = await gateway.chargers.load_charger("CP201")
    assert loaded is not None
    ref = loaded[1]
    plain = Sample(T0, Decimal(5000))
    signed = Sample(T0, Decimal(0), unit="SignedData", signed_data="0A0B0C")
    for tx, order in (("PS", (plain, signed)), ("SP", (signed, plain))):
        session = await gateway.sessions.started(ref, SessionStarted(tx, 1, 1, None, T0), None)
        for smp in order:
            await gateway.meter_writer.write(sample_rows(session.id, (smp,)), [])
        rows = await _stored(db, session.id)
        assert len(rows) == 1, (tx, rows)
        _ts, unit, value, signed_data = rows[0]
        assert (unit, Decimal(str(value)), signed_data) == ("Wh", Decimal(5000), "0A0B0C"), tx
    # and within one batch (PostgreSQL proposes each key once per statement)
    session = await gateway.sessions.started(ref, SessionStarted("ONE", 1, 1, None, T0), None)
    await gateway.meter_writer.write(
        sample_rows(session.id, (signed,)) + sample_rows(session.id, (plain,)) * 2, []
    )
    rows = await _stored(db, session.id)
    assert [(u, Decimal(str(v)), s) for _t, u, v, s in rows] == [("Wh", Decimal(5000), "0A0B0C")]


async def _cdr(db: Database, uid: str) -> Cdr:
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.data["session_id"].as_string() == uid))
        assert cdr is not None
        return cdr


async def test_a_16_session_with_every_second_sample_signed_only_prices_like_its_unsigned_twin(
    db: Database,
) -> None:
    """M2: every 2nd register sample is a 1.6 signed-only sample (stored unit SignedData, value 0)."""
    await seed_pricing_network(db)
    start = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    await seed_ended_session(db, "AMS-01-1", start, 60, "10", uid="plain", charge_minutes=40)
    sid = await seed_ended_session(db, "AMS-01-2", start, 60, "10", uid="signed", charge_minutes=40)
    async with db.session() as s:
        rows = (await s.scalars(select(MeterValue).where(MeterValue.session_id == sid))).all()
        for mv in rows:
            if int((mv.timestamp - start).total_seconds()) // 60 % 2 == 1:
                mv.unit, mv.value, mv.signed_data = "SignedData", Decimal(0), "DEADBEEF"
    assert await rate_pending(db, []) == 2
    plain, signed = await _cdr(db, "plain"), await _cdr(db, "signed")
    assert signed.total_cost_excl_vat == plain.total_cost_excl_vat
    assert signed.total_energy_kwh == plain.total_energy_kwh == Decimal(10)
    for key in ("total_time", "total_parking_time", "total_energy"):
        assert signed.data[key] == plain.data[key], key
    assert Decimal(str(signed.data["total_parking_time"])).quantize(Decimal("0.0001")) == Decimal("0.3333")


async def _complex_tariff(db: Database) -> None:
    """The spec's complex example, verbatim but for the CPO codes, as the demo CPO's tariff of every
    connector."""
    tariff = json.loads((EXAMPLES / "tariff_4_complex.json").read_text())
    tariff["country_code"], tariff["party_id"] = "NL", "AMP"
    async with db.session() as s:
        await prov.import_tariff(s, tariff)
        for c in (await s.scalars(select(Connector))).all():
            c.tariff_ids = [tariff["id"]]


async def _add_current(db: Database, sid: int, start: datetime, phases: dict[str, str]) -> None:
    async with db.session() as s:
        for minute in range(0, 166, 5):
            for phase, amps in phases.items():
                s.add(
                    MeterValue(
                        session_id=sid,
                        timestamp=start + timedelta(minutes=minute),
                        measurand="Current.Import",
                        unit="A",
                        phase=phase,
                        value=Decimal(amps),
                    )
                )


async def test_the_complex_tariff_example_prices_9_00_with_current_samples(db: Database) -> None:
    """M9: Monday 09:30, 2:45 h charging at 16 A (max_current 32 matches), 42 min parking: 2.50 + 2.75 + 3.75
    = 9.00 excl. VAT (incl.: each line rounded once, 2.88 + 3.30 + 4.13 = 10.31; the spec shows 10.30)."""
    await seed_pricing_network(db)
    await _complex_tariff(db)
    start = MONDAY_0930_AMS
    overall = await seed_ended_session(db, "AMS-01-1", start, 207, "10", uid="overall", charge_minutes=165)
    phased = await seed_ended_session(db, "AMS-01-2", start, 207, "10", uid="phased", charge_minutes=165)
    await _add_current(db, overall, start, {"": "16"})
    await _add_current(db, phased, start, {"L1": "5.4", "L2": "5.4", "L3": "5.4"})  # 16.2 A in all
    assert await rate_pending(db, []) == 2
    for uid in ("overall", "phased"):
        cdr = await _cdr(db, uid)
        assert (cdr.total_cost_excl_vat, cdr.total_cost_incl_vat) == (Decimal("9.00"), Decimal("10.31")), uid


async def test_a_begin_reading_before_the_start_is_the_baseline(db: Database) -> None:
    """M1(a): a 2.0.1 session (no meter start) whose Transaction.Begin reading is stamped 3 ms before the
    start: the series starts at 0 at the start and the first minute has its energy."""
    await seed_pricing_network(db)
    start = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    sid = await seed_ended_session(db, "AMS-01-1", start, 2, "1.1", uid="begin")
    async with db.session() as s:
        await s.execute(delete(MeterValue).where(MeterValue.session_id == sid))
        cs = await s.get(ChargingSession, sid)
        assert cs is not None
        cs.meter_start_wh = None
        for offset, wh, context in (
            (timedelta(milliseconds=-3), "1000", "Transaction.Begin"),
            (timedelta(minutes=1), "1550", "Sample.Periodic"),
            (timedelta(minutes=2), "2100", "Transaction.End"),
        ):
            s.add(MeterValue(session_id=sid, timestamp=start + offset, value=Decimal(wh), context=context))
    async with db.session() as s:
        cs = await s.get(ChargingSession, sid)
        assert cs is not None
        inputs = await load_inputs(s, cs)
        series = meter_samples(inputs.meter_rows, cs)
    assert [(p.timestamp, p.energy_wh) for p in series] == [
        (start, Decimal(0)),
        (start + timedelta(minutes=1), Decimal(550)),
        (start + timedelta(minutes=2), Decimal(1100)),
    ]


async def test_the_ocpi_session_never_sends_negative_energy_for_a_reset(db: Database) -> None:
    """M3: register 1000 -> 4000, reset to 20, then 520: periods 3.0, 0.02, 0.5 kWh (sum = kwh), none negative."""
    await seed_pricing_network(db)
    start = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    sid = await seed_ended_session(db, "AMS-01-1", start, 3, "3.52", uid="reset")
    async with db.session() as s:
        await s.execute(delete(MeterValue).where(MeterValue.session_id == sid))
        for minute, wh in ((0, "1000"), (1, "4000"), (2, "20"), (3, "520")):
            s.add(MeterValue(session_id=sid, timestamp=start + timedelta(minutes=minute), value=Decimal(wh)))
    async with db.session() as s:
        cs = await s.get(ChargingSession, sid)
        assert cs is not None
        cpo = await s.get(Party, cs.cpo_id)
        assert cpo is not None
        obj = await session_object(s, cs, cpo)
    volumes = [p["dimensions"][0]["volume"] for p in obj["charging_periods"]]
    assert volumes == [Decimal(3), Decimal("0.02"), Decimal("0.5")]
    assert sum(volumes) == obj["kwh"]
