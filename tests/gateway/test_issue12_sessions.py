"""Issue 12, the gateway half of the session lifecycle (plan docs/plans/money-is-right.md M4, M7, M8): 1.6
StartTransaction replays found by the database's unique start key, one ACTIVE session per connector, late and
out-of-order 2.0.1 data (grace, REPRICE), implausible charger clocks flagged, held sessions listed and released
by the operator, the held-sessions gauge, and the charger's meter public key. Real websocket chargers against
the real gateway where a charger is involved; SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import Result

from cpo_gateway.charger_store import ChargerStore
from cpo_gateway.events import SessionStarted
from cpo_gateway.server import Gateway
from cpo_gateway.session_store import SUPERSEDED_BY_NEW_START, SessionStore
from kernel.db.engine import Database
from kernel.metrics import refresh_database_gauges
from kernel.models import ChargePoint, ChargingSession, PricingState, SessionStatus
from kernel.seams import Hooks
from kernel.timeutil import utcnow
from tests.gateway.conftest import T0, Seed, gateway_settings, iso, open_client, wait_until
from tests.world.ocmf import SigningMeter


def mv(ts: Any, wh: int, context: str = "Sample.Periodic") -> dict[str, Any]:
    sv = {"value": str(wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"timestamp": iso(ts), "sampledValue": [sv]}


async def _sessions(db: Database) -> list[ChargingSession]:
    async with db.session() as s:
        return list((await s.scalars(select(ChargingSession).order_by(ChargingSession.id))).all())


async def _by_tx(db: Database, tx: object) -> ChargingSession:
    async with db.session() as s:
        found = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == str(tx)))
        assert found is not None, f"no session for transaction {tx}"
        return found


# -- M7: 1.6 StartTransaction replays -------------------------------------------------------------------------


async def test_parallel_resent_start_is_one_session(db: Database, seeded: Seed, database_url: str) -> None:
    """M7: the same StartTransaction handled twice at once on two database connections (the first one stalls
    inside its transaction, as in a database stall that outlasts the charger's timeout) is one session: the
    unique (charger, start key) refuses the second insert, which answers the first one's transactionId."""
    loaded = await ChargerStore(db).load_charger("CP16")
    assert loaded is not None
    ref = loaded[1]
    inside, release = asyncio.Event(), asyncio.Event()

    async def stall(_db_session: AsyncSession, _session: ChargingSession) -> None:
        if not inside.is_set():  # only the first start stalls, after its row is written, before its commit
            inside.set()
            await release.wait()

    second_db = Database(database_url)
    try:
        first = SessionStore(db, Hooks(session=[stall]))
        second = SessionStore(second_db, Hooks(session=[stall]))
        start = SessionStarted(None, 1, 1, "AABBCC01", T0, Decimal(1000))
        a = asyncio.create_task(first.start_v16(ref, start, None))
        await asyncio.wait_for(inside.wait(), 10)
        b = asyncio.create_task(second.start_v16(ref, start, None))

        async def second_is_waiting() -> bool:
            if b.done() or second_db.engine.sync_engine.pool.checkedout() < 1:  # type: ignore[attr-defined]
                return False
            if db.is_sqlite:
                return True  # its BEGIN IMMEDIATE waits for the first start's transaction
            async with db.engine.connect() as conn:
                waiting = await conn.scalar(
                    text(
                        "select count(*) from pg_stat_activity where datname = current_database()"
                        " and wait_event_type = 'Lock' and query ilike 'insert into sessions%'"
                    )
                )
            return bool(waiting)  # its INSERT waits on the first one's uncommitted start key

        await wait_until(second_is_waiting, "the second start waits for the first one's transaction")
        release.set()
        (tx_a, _), (tx_b, _) = await asyncio.gather(a, b)
    finally:
        release.set()
        await second_db.dispose()
    assert tx_a == tx_b
    rows = await _sessions(db)
    assert len(rows) == 1
    assert rows[0].transaction_id == tx_a and rows[0].start_key == f"1|{T0.isoformat()}|AABBCC01"


async def test_resent_start_with_other_case_id_tag(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """M7: idTag is a CiString20 ("case insensitive"): a StartTransaction resent on a new connection with
    idTag "ABC" after "abc" (same connector and timestamp) answers the same transactionId; one session."""
    start = {"connectorId": 1, "meterStart": 1000, "timestamp": iso(T0)}
    c = await open_client(gateway, "CP16", "ocpp1.6")
    first = await c.ok("StartTransaction", {**start, "idTag": "abc"})
    await c.close()
    c = await open_client(gateway, "CP16", "ocpp1.6")
    again = await c.ok("StartTransaction", {**start, "idTag": "ABC"})
    other = await c.ok("StartTransaction", {**start, "idTag": "ABD"})  # another idTag is another start
    await c.close()
    assert again["transactionId"] == first["transactionId"] != other["transactionId"]
    rows = await _sessions(db)
    assert [r.transaction_id for r in rows] == [str(first["transactionId"]), str(other["transactionId"])]


async def test_new_start_supersedes_the_active_session(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """M7: a connector has at most one ACTIVE session. A new start on connector 1 while its previous session
    is still ACTIVE (its stop never came) closes that one: COMPLETED at its last meter value, flag
    SUPERSEDED_BY_NEW_START, pricing HELD with the reason; the other connector's session is untouched. When
    the old stop does arrive, it ends the session as reported and hands it to pricing."""
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx1 = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000,
                                           "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    tx_other = (await c.ok("StartTransaction", {"connectorId": 2, "idTag": "AABBCC01", "meterStart": 0,
                                                "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx1,
                               "meterValue": [mv(T0 + timedelta(minutes=10), 3000)]})  # fmt: skip
    await c.close()
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx2 = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 9000,
                                           "timestamp": iso(T0 + timedelta(hours=2))}))["transactionId"]  # fmt: skip
    old, new, other = await _by_tx(db, tx1), await _by_tx(db, tx2), await _by_tx(db, tx_other)
    assert new.status == SessionStatus.ACTIVE and other.status == SessionStatus.ACTIVE
    assert old.status == SessionStatus.COMPLETED and SUPERSEDED_BY_NEW_START in old.flags
    assert old.pricing_state == PricingState.HELD and old.end_time == T0 + timedelta(minutes=10)
    assert old.energy_wh == Decimal(2000)
    assert old.review_reason is not None and old.review_reason.startswith("superseded: transaction")
    assert f"transaction {tx2} started on the same connector (1)" in old.review_reason
    # its stop, queued by the charger, arrives after all
    await c.ok("StopTransaction", {"transactionId": tx1, "meterStop": 4000,
                                   "timestamp": iso(T0 + timedelta(minutes=30))})  # fmt: skip
    await c.close()
    old = await _by_tx(db, tx1)
    assert old.status == SessionStatus.COMPLETED and SUPERSEDED_BY_NEW_START not in old.flags
    assert old.end_time == T0 + timedelta(minutes=30) and old.energy_wh == Decimal(3000)
    assert old.pricing_state == PricingState.PENDING and old.review_reason is None
    assert (await _by_tx(db, tx2)).status == SessionStatus.ACTIVE
    async with db.session() as s:
        active = await s.scalar(
            select(func.count())
            .select_from(ChargingSession)
            .where(ChargingSession.status == SessionStatus.ACTIVE, ChargingSession.ocpp_connector_id == 1)
        )
    assert active == 1


# -- M4: 2.0.1 Ended before Started, late data ----------------------------------------------------------------


def te(kind: str, tx: str, ts: Any, seq: int, *values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A TransactionEventRequest on EVSE 1 of CP201."""
    payload: dict[str, Any] = {
        "eventType": kind, "timestamp": iso(ts), "triggerReason": "MeterValuePeriodic", "seqNo": seq,
        "transactionInfo": {"transactionId": tx}, "evse": {"id": 1, "connectorId": 1},
    }  # fmt: skip
    if kind == "Ended":
        payload["transactionInfo"]["stoppedReason"] = "EVDisconnected"
    if values:
        payload["meterValue"] = list(values)
    payload.update(extra)
    return payload


def kwh(ts: Any, value: str, context: str = "Sample.Periodic") -> dict[str, Any]:
    sv = {"value": float(value), "context": context, "measurand": "Energy.Active.Import.Register",
          "unitOfMeasure": {"unit": "kWh"}}  # fmt: skip
    return {"timestamp": iso(ts), "sampledValue": [sv]}


END = T0 + timedelta(hours=1)
BEGIN_VALUE = kwh(T0, "10.0", "Transaction.Begin")
ENDED = te(
    "Ended", "TX-LATE", END, 3, kwh(T0 + timedelta(minutes=40), "14.0"), kwh(END, "15.5", "Transaction.End")
)
STARTED = te("Started", "TX-LATE", T0, 0, BEGIN_VALUE, idToken={"idToken": "AABBCC01", "type": "ISO14443"})
UPDATED = [te("Updated", "TX-LATE", T0 + timedelta(minutes=m), n, kwh(T0 + timedelta(minutes=m), v))
           for n, m, v in ((1, 10, "11.0"), (2, 20, "12.0"))]  # fmt: skip


async def _grace_gateway(db: Database, database_url: str, grace: float) -> Gateway:
    gw = Gateway(gateway_settings(database_url, late_data_grace=grace), db, "node-grace")
    await gw.start("127.0.0.1", 0)
    return gw


async def test_ended_before_started_waits_for_the_late_events(
    db: Database, seeded: Seed, database_url: str
) -> None:
    """M4: an Ended event for a transaction never started (out-of-order delivery after an outage) is not
    priced at once (without its Transaction.Begin reading it cannot be: "not priceable" until more comes).
    Its late Started leaves a seqNo gap: PENDING until price_after = now (the hub's clock) +
    late_data_grace. The Updated events arriving inside the grace just complete it: the start, the meter
    start and the energy of the whole transaction, seqNos 0..3 all seen, still PENDING, same price_after."""
    gw = await _grace_gateway(db, database_url, 900)
    try:
        c = await open_client(gw, "CP201", "ocpp2.0.1")
        await c.ok("TransactionEvent", ENDED)
        sess = await _by_tx(db, "TX-LATE")
        assert "UNKNOWN_TRANSACTION" in sess.flags and sess.pricing_state != PricingState.PRICED
        before = utcnow()
        await c.ok("TransactionEvent", STARTED)  # seqNos 0 and 3 seen: 1 and 2 are still on their way
        after = utcnow()
        sess = await _by_tx(db, "TX-LATE")
        assert sess.pricing_state == PricingState.PENDING and sess.price_after is not None
        grace_ends = sess.price_after
        assert before + timedelta(seconds=900) <= grace_ends <= after + timedelta(seconds=900)
        for event in UPDATED:
            await c.ok("TransactionEvent", event)
        await c.close()
    finally:
        await gw.stop()
    sess = await _by_tx(db, "TX-LATE")
    assert sess.pricing_state == PricingState.PENDING and sess.price_after == grace_ends
    assert sess.start_time == T0 and sess.end_time == END and "UNKNOWN_TRANSACTION" not in sess.flags
    assert sess.meter_start_wh == Decimal(10000) and sess.energy_wh == Decimal(5500)
    assert sess.data["seq_nos"] == [0, 1, 2, 3]


async def test_priceable_ended_first_waits_the_grace(db: Database, seeded: Seed, database_url: str) -> None:
    """M4: an Ended event that could be priced on its own (it carries the Transaction.Begin reading) but whose
    transaction was never started is PENDING with price_after = now + late_data_grace, not priced at once."""
    gw = await _grace_gateway(db, database_url, 600)
    try:
        c = await open_client(gw, "CP201", "ocpp2.0.1")
        before = utcnow()
        await c.ok(
            "TransactionEvent", te("Ended", "TX-E", END, 3, BEGIN_VALUE, kwh(END, "15.5", "Transaction.End"))
        )
        after = utcnow()
        await c.close()
    finally:
        await gw.stop()
    sess = await _by_tx(db, "TX-E")
    assert sess.pricing_state == PricingState.PENDING and sess.energy_wh == Decimal(5500)
    assert sess.price_after is not None
    assert before + timedelta(seconds=600) <= sess.price_after <= after + timedelta(seconds=600)


async def test_sequence_gap_waits_the_grace(db: Database, seeded: Seed, database_url: str) -> None:
    """M4: Started(0) then Ended(3) with seqNos 1 and 2 never received: PENDING with price_after = now +
    late_data_grace. A complete transaction (0, 1, 2, 3; 1 and 2 on the group-commit path) is priced at once
    (price_after None)."""
    gw = await _grace_gateway(db, database_url, 600)
    try:
        c = await open_client(gw, "CP201", "ocpp2.0.1")
        await c.ok("TransactionEvent", STARTED)
        await c.ok("TransactionEvent", ENDED)
        complete = {"transactionInfo": {"transactionId": "TX-FULL"}}
        await c.ok("TransactionEvent", {**STARTED, **complete, "evse": {"id": 2, "connectorId": 1}})
        for event in UPDATED:
            await c.ok("TransactionEvent", {**event, **complete, "evse": {"id": 2, "connectorId": 1}})
        await c.ok("TransactionEvent", {**ENDED, "transactionInfo": {"transactionId": "TX-FULL",
                                                                     "stoppedReason": "Local"},
                                        "evse": {"id": 2, "connectorId": 1}})  # fmt: skip
        await c.close()
    finally:
        await gw.stop()
    gap = await _by_tx(db, "TX-LATE")
    assert gap.data["seq_nos"] == [0, 3] and gap.pricing_state == PricingState.PENDING
    assert gap.price_after is not None and gap.price_after > utcnow()
    full = await _by_tx(db, "TX-FULL")
    assert full.data["seq_nos"] == [0, 1, 2, 3] and full.pricing_state == PricingState.PENDING
    assert full.price_after is None and full.energy_wh == Decimal(5500)


async def _mark_priced(db: Database, tx: str) -> None:
    """What the rating worker does when it issued the session's CDR."""
    async with db.session() as s:
        row = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == tx))
        assert row is not None
        row.pricing_state = PricingState.PRICED
        row.price_after = None


async def test_late_events_for_a_priced_session_reprice_it(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    """M4: a session already PRICED from its Ended event alone gets its Started and Updated events late: the
    start and energy are recomputed and pricing_state becomes REPRICE (pricing credits and re-issues). While
    a seqNo is still missing the re-pricing waits price_after = now + late_data_grace (one correction for a
    burst of late messages); once all are in, at once. A replay of an event already stored changes nothing
    and leaves a priced session PRICED."""
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    await c.ok("TransactionEvent", ENDED)
    await _mark_priced(db, "TX-LATE")
    await c.ok("TransactionEvent", ENDED)  # a replay of the Ended event: nothing new
    assert (await _by_tx(db, "TX-LATE")).pricing_state == PricingState.PRICED
    before = utcnow()
    await c.ok("TransactionEvent", STARTED)  # seqNos 0 and 3: 1 and 2 still missing
    after = utcnow()
    sess = await _by_tx(db, "TX-LATE")
    assert sess.pricing_state == PricingState.REPRICE
    assert sess.start_time == T0 and sess.energy_wh == Decimal(5500)
    assert sess.price_after is not None
    assert before + timedelta(seconds=600) <= sess.price_after <= after + timedelta(seconds=600)
    await _mark_priced(db, "TX-LATE")  # repriced after the grace
    await c.ok("TransactionEvent", UPDATED[0])  # a late sample: the stored series changed; 2 still missing
    sess = await _by_tx(db, "TX-LATE")
    assert sess.pricing_state == PricingState.REPRICE and sess.price_after is not None
    await _mark_priced(db, "TX-LATE")
    await c.ok("TransactionEvent", UPDATED[0])  # its replay
    assert (await _by_tx(db, "TX-LATE")).pricing_state == PricingState.PRICED
    await c.ok("TransactionEvent", UPDATED[1])  # the last one: complete, re-priced at once
    await c.close()
    sess = await _by_tx(db, "TX-LATE")
    assert sess.pricing_state == PricingState.REPRICE and sess.price_after is None
    assert sess.data["seq_nos"] == [0, 1, 2, 3]


async def test_late_meter_values_for_a_priced_16_session_reprice_it(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    """M4: 1.6 MeterValues that arrive after the StopTransaction of a session already PRICED add to its
    stored series (the energy over time, which time-based prices read): the session goes to REPRICE; the
    same MeterValues resent changes nothing."""
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000,
                                          "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 6000, "timestamp": iso(END)})
    await _mark_priced(db, str(tx))
    late = {"connectorId": 1, "transactionId": tx, "meterValue": [mv(T0 + timedelta(minutes=30), 3000)]}
    await c.ok("MeterValues", late)
    sess = await _by_tx(db, tx)
    assert sess.pricing_state == PricingState.REPRICE and sess.energy_wh == Decimal(5000)
    await _mark_priced(db, str(tx))
    await c.ok("MeterValues", late)
    await c.close()
    assert (await _by_tx(db, tx)).pricing_state == PricingState.PRICED


# -- M8: implausible charger clocks, held sessions, release, the gauge ----------------------------------------


async def test_charger_stamp_far_ahead_is_clock_suspect(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """M8: a charger timestamp more than a day ahead of the moment the hub received it comes from a wrong
    clock: the session is flagged CLOCK_SUSPECT at once (pricing then holds it). Two hours ahead, or months
    in the past (a message queued while offline), is not suspect."""
    now = utcnow()
    c = await open_client(gateway, "CP16", "ocpp1.6")
    ahead = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 0,
                                             "timestamp": iso(now + timedelta(days=3))}))["transactionId"]  # fmt: skip
    near = (await c.ok("StartTransaction", {"connectorId": 2, "idTag": "AABBCC01", "meterStart": 0,
                                            "timestamp": iso(now + timedelta(hours=2))}))["transactionId"]  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": near, "meterStop": 100, "timestamp": iso(T0)})
    await c.close()
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    await c.ok("TransactionEvent", te("Ended", "TX-FUTURE", now + timedelta(days=400), 0))
    await c.close()
    flagged = await _by_tx(db, ahead)
    assert "CLOCK_SUSPECT" in flagged.flags and "received at" in flagged.data["clock_suspect"]
    assert "CLOCK_SUSPECT" not in (await _by_tx(db, near)).flags
    assert "CLOCK_SUSPECT" in (await _by_tx(db, "TX-FUTURE")).flags


async def _held_session(gateway: Gateway, db: Database) -> ChargingSession:
    """A session held for review the way the gateway holds one: superseded by a new start on its connector."""
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000,
                                          "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
    await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx,
                               "meterValue": [mv(T0 + timedelta(minutes=20), 5000)]})  # fmt: skip
    await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 5000,
                                    "timestamp": iso(T0 + timedelta(hours=3))})  # fmt: skip
    await c.close()
    held = await _by_tx(db, tx)
    assert held.pricing_state == PricingState.HELD
    return held


async def test_list_held_sessions_with_their_reason(
    gateway: Gateway, db: Database, seeded: Seed, cli: Callable[..., Awaitable[Result]]
) -> None:
    """M8: `evhub sessions list --state held` lists exactly the held sessions, each with its review reason on
    a line of its own (as `--state failed` shows the pricing error); --json carries review_reason."""
    held = await _held_session(gateway, db)
    out = (await cli("sessions", "list", "--state", "held")).output
    assert held.session_uid in out and f"held for review {held.session_uid}: superseded: transaction" in out
    assert out.count("held for review") == 1  # the session that superseded it runs on: not listed
    rows = json.loads((await cli("sessions", "list", "--state", "held", "--json")).output)
    assert [(r["id"], r["pricing_state"]) for r in rows] == [(held.session_uid, "held")]
    assert rows[0]["review_reason"] == held.review_reason
    assert json.loads((await cli("sessions", "list", "--state", "failed", "--json")).output) == []


async def test_release_a_held_session(
    gateway: Gateway, db: Database, seeded: Seed, cli: Callable[..., Awaitable[Result]]
) -> None:
    """M8: `evhub sessions release UID --end T` corrects the end of a held session, recomputes its energy,
    clears review_reason and hands it to pricing (PENDING); a bad uid, a session that is not held and an end
    before the start are one clear line each and exit 1, changing nothing."""
    held = await _held_session(gateway, db)
    running = (await _sessions(db))[-1]
    bad = await cli("sessions", "release", "no-such-session", ok=False)
    assert bad.exit_code == 1 and "unknown session 'no-such-session'" in bad.output
    not_held = await cli("sessions", "release", running.session_uid, ok=False)
    assert not_held.exit_code == 1
    assert f"session {running.session_uid} is not held (pricing state not_ready)" in not_held.output
    backwards = await cli("sessions", "release", held.session_uid[:8], "--end", iso(T0 - timedelta(hours=1)),
                          ok=False)  # fmt: skip
    assert backwards.exit_code == 1 and "is before start" in backwards.output
    assert (await _by_tx(db, held.transaction_id)).pricing_state == PricingState.HELD
    out = (
        await cli("sessions", "release", held.session_uid[:8], "--end", iso(T0 + timedelta(minutes=40)))
    ).output
    assert f"released session {held.session_uid}: pending pricing" in out
    released = await _by_tx(db, held.transaction_id)
    assert released.pricing_state == PricingState.PENDING and released.review_reason is None
    assert released.end_time == T0 + timedelta(minutes=40) and released.energy_wh == Decimal(4000)
    assert released.data["released"]["review_reason"] == held.review_reason
    assert released.data["released"]["end_time"] == (T0 + timedelta(minutes=20)).isoformat()
    again = await cli("sessions", "release", held.session_uid, ok=False)
    assert again.exit_code == 1 and "is not held (pricing state pending)" in again.output


async def test_a_released_clock_suspect_session_loses_the_flag(
    gateway: Gateway, db: Database, seeded: Seed, cli: Callable[..., Awaitable[Result]]
) -> None:
    """M8: releasing a session held for a suspect clock, with its corrected times, drops CLOCK_SUSPECT (the
    operator checked the clock), so pricing does not hold it again for the flag."""
    now = utcnow()
    c = await open_client(gateway, "CP16", "ocpp1.6")
    tx = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 0,
                                          "timestamp": iso(now + timedelta(days=30))}))["transactionId"]  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 2000,
                                   "timestamp": iso(now + timedelta(days=30, hours=1))})  # fmt: skip
    await c.close()
    async with db.session() as s:  # what rating does with it
        row = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == str(tx)))
        assert row is not None and "CLOCK_SUSPECT" in row.flags
        row.pricing_state, row.review_reason = PricingState.HELD, "flag CLOCK_SUSPECT"
    start, end = now - timedelta(hours=2), now - timedelta(hours=1)
    await cli("sessions", "release", row.session_uid, "--start", iso(start), "--end", iso(end))
    released = await _by_tx(db, tx)
    assert released.start_time == start and released.end_time == end and released.energy_wh == Decimal(2000)
    assert "CLOCK_SUSPECT" not in released.flags and released.pricing_state == PricingState.PENDING


async def test_held_sessions_gauge(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """M8: `evhub_sessions_held` counts the held sessions at scrape, as evhub_sessions_pricing_failed counts
    the failed ones."""
    await refresh_database_gauges(db)
    assert REGISTRY.get_sample_value("evhub_sessions_held") == 0
    await _held_session(gateway, db)
    await refresh_database_gauges(db)
    assert REGISTRY.get_sample_value("evhub_sessions_held") == 1


# -- the meter's public key, set by the operator --------------------------------------------------------------


async def test_chargers_update_meter_public_key(
    db: Database, seeded: Seed, cli: Callable[..., Awaitable[Result]]
) -> None:
    """Item 2: `evhub chargers update IDENTITY --meter-public-key KEY` stores the meter's public key
    (charge_points.meter_public_key, base64 DER as OCPI's public_key) whether given as hex or base64; '' removes
    it; a value that is not a public key is one clear line, exit 1, and the stored key stays."""
    meter = SigningMeter()

    async def stored() -> str | None:
        async with db.session() as s:
            return await s.scalar(select(ChargePoint.meter_public_key).where(ChargePoint.identity == "CP201"))

    out = (await cli("chargers", "update", "CP201", "--meter-public-key", meter.public_key_hex)).output
    assert "updated charger CP201" in out and "meter public key set" in out
    assert await stored() == meter.public_key_b64
    await cli("chargers", "update", "CP201", "--meter-public-key", meter.public_key_b64)
    assert await stored() == meter.public_key_b64
    for bad in ("not-a-key", base64.b64encode(b"just some bytes").decode()):
        result = await cli("chargers", "update", "CP201", "--meter-public-key", bad, ok=False)
        assert result.exit_code == 1 and "--meter-public-key: not a public key" in result.output
        assert "Traceback" not in result.output
    assert await stored() == meter.public_key_b64
    assert (
        "meter public key removed"
        in (await cli("chargers", "update", "CP201", "--meter-public-key", "")).output
    )
    assert await stored() is None
    unknown = await cli("chargers", "update", "NOPE", "--meter-public-key", meter.public_key_hex, ok=False)
    assert unknown.exit_code == 1 and "NOPE" in unknown.output


# -- M3 (D1 phase rule) in the gateway's own energy -----------------------------------------------------------


def phases(ts: Any, wh: tuple[int, int, int], context: str = "Sample.Periodic") -> dict[str, Any]:
    """An energy register reported per phase only (L1, L2, L3; no phase-less value)."""
    return {"timestamp": iso(ts), "sampledValue": [
        {"value": v, "context": context, "measurand": "Energy.Active.Import.Register", "phase": p,
         "unitOfMeasure": {"unit": "Wh"}} for p, v in zip(("L1", "L2", "L3"), wh, strict=True)]}  # fmt: skip


async def test_energy_from_phase_registers_only(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """M3 (D1 phase rule): a 2.0.1 charger that reports its energy register per phase only gives the session
    the energy of the sums of L1..L3 (the overall value, as rating's series reads it), its meter start and
    stop too, and is priceable; it used to be no reading at all (energy 0)."""
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    await c.ok(
        "TransactionEvent", te("Started", "TX-PH", T0, 0, phases(T0, (1000, 2000, 3000), "Transaction.Begin"))
    )
    await c.ok(
        "TransactionEvent", te("Ended", "TX-PH", END, 1, phases(END, (2000, 4000, 4500), "Transaction.End"))
    )
    await c.close()
    sess = await _by_tx(db, "TX-PH")
    assert sess.meter_start_wh == Decimal(6000) and sess.meter_stop_wh == Decimal(10500)
    assert sess.energy_wh == Decimal(4500) and sess.pricing_state == PricingState.PENDING
    assert "METER_STOP_MISSING" not in sess.flags
