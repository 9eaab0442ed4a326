"""T7 (issue #12): reservations were never billed, and an expired reservation could not be expressed on the
OCPI/CLI input path (examples 17/18 priced 2.00/4.50 instead of 6.00/9.00).

OCPI 2.2.1 mod_tariffs, TariffRestrictions ``reservation``: "A reservation starts when the reservation is
made, and ends when the driver starts charging on the reserved EVSE/Location, or when the reservation
expires."; ReservationRestrictionType RESERVATION_EXPIRES: "costs for a reservation that expires (i.e. driver
does not start a charging session before expiry_date of the reservation)". mod_cdrs: ``start_date_time`` "in-case
of a reservation (before the start of a session) the start of the reservation"; ``session_id`` "Is only
allowed to be omitted when ... this CDR is the result of a reservation that never became a charging session".

The four tariffs are the spec's examples 15-18 (tag 2.2.1, ``examples/tariff_1[5-8]_*.json``), verbatim.
"""

# ruff: noqa: F811  (the tests take the OCPI world's fixtures, imported below, as arguments)

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import (
    EVSE,
    Cdr,
    ChargePoint,
    ChargePointEvse,
    ChargingSession,
    OcppVersion,
    RegistrationStatus,
    Reservation,
    ReservationStatus,
    SessionStatus,
)
from kernel.security import hash_password
from kernel.timeutil import format_rfc3339, utcnow
from tariffs.core.charging_periods import charging, reservation
from tariffs.core.engine import price_session
from tariffs.core.ocpi_periods import periods_from_ocpi
from tariffs.core.tariff_document import ChargingPeriod, Tariff
from tariffs.core.tariff_json import load_tariff
from tests.gateway.conftest import (  # noqa: F401  (gateway, seeded: the gateway world's fixtures)
    PASSWORD,
    Client,
    gateway,
    gateway_settings,
    iso,
    open_client,
    seeded,
)
from tests.ocpi._helpers import advance_clock, connect
from tests.ocpi.conftest import hub, network, real_sockets, sim  # noqa: F401  (the OCPI world's fixtures)
from tests.world.sites import seed_cpo, seed_location

SPEC_EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "ocpi-examples"  # verbatim, tag 2.2.1
EXAMPLES = {n: next(SPEC_EXAMPLES.glob(f"tariff_{n}_*.json")).read_text() for n in (15, 16, 17, 18)}
"""The spec's reservation examples 15-18 (mod_tariffs), as published."""

MADE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the reservation is made (the charger accepted it)
TZ = "Europe/Berlin"


def example(n: int) -> Tariff:
    return load_tariff(EXAMPLES[n])


def cp(at: datetime, **volumes: str) -> ChargingPeriod:
    return ChargingPeriod.model_validate(
        {
            "start_date_time": at.isoformat(),
            "dimensions": [{"type": k, "volume": v} for k, v in volumes.items()],
        }
    )


def total(r) -> tuple[D, D]:  # type: ignore[no-untyped-def]
    return r.total_cost.excl_vat, r.total_cost.incl_vat


# "For a charging session that was started N minutes after the reservation time, where the driver charges
# 20 kWh, this tariff will result in costs of X euro (excl. VAT) or Y euro (incl. VAT)."
USED = [
    (15, 15, D("6.75"), D("7.60")),
    (16, 13, D("8.75"), D("10.00")),
    (17, 22, D("6.50"), D("7.30")),
    (18, 22, D("7.00"), D("7.90")),
]
# "If the driver did not start a charging session and the reservation expired after the reserved time of
# 1 hour [1.5 hours], the tariff would have resulted in costs of 6.00 [9.00] euro (excl. VAT) or 7.20 [10.80]
# euro (incl. VAT)."
EXPIRED = [(17, 60, D("6.00"), D("7.20")), (18, 90, D("9.00"), D("10.80"))]


@pytest.mark.parametrize(("n", "minutes", "excl", "incl"), USED)
def test_used_reservation_examples_through_engine_periods(n: int, minutes: int, excl: D, incl: D) -> None:
    """T7: a reservation followed by a charging session is billed with the RESERVATION elements from the
    reservation's start to the session's start (spec examples 15-18, "used")."""
    start = MADE + timedelta(minutes=minutes)
    end = start + timedelta(hours=1)
    periods = [reservation(MADE, start), charging(start, end, D(20000))]
    assert total(price_session(example(n), periods, start, end, TZ)) == (excl, incl)


@pytest.mark.parametrize(("n", "minutes", "excl", "incl"), USED)
def test_used_reservation_examples_through_ocpi_periods(n: int, minutes: int, excl: D, incl: D) -> None:
    """T7: the same CDRs in their OCPI form (a RESERVATION_TIME period before the session's periods, the CDR
    starting at the reservation's start) price the same; a reservation followed by charging is never taken
    for an expired one."""
    start = MADE + timedelta(minutes=minutes)
    end = start + timedelta(hours=1)
    cps = [cp(MADE, RESERVATION_TIME=str(D(minutes) / 60)), cp(start, ENERGY="20", TIME="1")]
    periods = periods_from_ocpi(cps, end)
    assert [p.expired for p in periods] == [False, False]
    assert total(price_session(example(n), cps, MADE, end, TZ)) == (excl, incl)


def test_example_16_reservation_cost_is_fee_plus_three_steps() -> None:
    """T7: example 16 bills 15 minutes of reservation (per 5 min) for a start 13 minutes after the
    reservation plus the 2.00 fee: total_reservation_cost 3.25 excl. VAT; the start fee stays fixed cost."""
    start = MADE + timedelta(minutes=13)
    r = price_session(example(16), [reservation(MADE, start), charging(start, start + timedelta(hours=1), 20000)],
                      start, start + timedelta(hours=1), TZ)  # fmt: skip
    assert r.total_reservation_cost.excl_vat == D("3.25")
    assert r.total_fixed_cost.excl_vat == D("0.50")


@pytest.mark.parametrize(("n", "minutes", "excl", "incl"), EXPIRED)
def test_expired_reservation_examples_through_engine_periods(n: int, minutes: int, excl: D, incl: D) -> None:
    """T7: a reservation that expired unused is billed with the RESERVATION_EXPIRES elements (and, for the
    time example 17 has none of, with the RESERVATION ones), without the session's start fee."""
    expiry = MADE + timedelta(minutes=minutes)
    periods = [reservation(MADE, expiry, expired=True)]
    assert total(price_session(example(n), periods, MADE, expiry, TZ)) == (excl, incl)


@pytest.mark.parametrize(("n", "minutes", "excl", "incl"), EXPIRED)
def test_ocpi_cdr_with_only_reservation_time_is_an_expired_reservation(
    n: int, minutes: int, excl: D, incl: D
) -> None:
    """T7, the OCPI input rule: a CDR whose charging periods carry only RESERVATION_TIME (no ENERGY, TIME
    or PARKING_TIME anywhere) is a reservation that never became a charging session, so RESERVATION_EXPIRES
    elements match: 6.00 / 9.00, not the 2.00 / 4.50 of the RESERVATION elements alone."""
    expiry = MADE + timedelta(minutes=minutes)
    cps = [cp(MADE, RESERVATION_TIME=str(D(minutes) / 60))]
    assert [p.expired for p in periods_from_ocpi(cps, expiry)] == [True]
    assert total(price_session(example(n), cps, MADE, expiry, TZ)) == (excl, incl)


def test_expired_inference_can_be_overridden() -> None:
    """T7: ``reservation_expired=False`` prices reservation time as an ordinary reservation (2.00 for example
    17's hour: what every OCPI input priced before the rule); True forces the expired reading."""
    expiry = MADE + timedelta(hours=1)
    cps = [cp(MADE, RESERVATION_TIME="1")]
    as_reserved = periods_from_ocpi(cps, expiry, reservation_expired=False)
    assert total(price_session(example(17), as_reserved, MADE, expiry, TZ)) == (D("2.00"), D("2.40"))
    start = MADE + timedelta(minutes=22)
    used = [cp(MADE, RESERVATION_TIME="0.366667"), cp(start, ENERGY="20", TIME="1")]
    forced = periods_from_ocpi(used, start + timedelta(hours=1), reservation_expired=True)
    assert [p.expired for p in forced] == [True, False]


# ------------------------------------------------------------------------------------ through the hub (DB)


async def _site(db: Database) -> None:
    """CPO NL*CPO, location LOC1 (EVSEs LOC1-E1, LOC1-E2) served by the 1.6 charger CP-R, example 16 as the
    CPO's DEFAULT tariff."""
    from evhub import provisioning as prov
    from kernel.jsonutil import loads

    cpo = await seed_cpo(db)
    loc = await seed_location(db, cpo, "LOC1")
    async with db.session() as s:
        cp = ChargePoint(identity="CP-R", password_hash=hash_password(PASSWORD), ocpp_version=OcppVersion.V16,
                         cpo_id=cpo, location_id=loc, registration_status=RegistrationStatus.ACCEPTED)  # fmt: skip
        s.add(cp)
        await s.flush()
        for n in (1, 2):
            evse = await s.scalar(select(EVSE).where(EVSE.uid == f"LOC1-E{n}"))
            s.add(ChargePointEvse(charge_point_id=cp.id, ocpp_evse_id=n, evse_pk=evse.id))
        tariff = {**loads(EXAMPLES[16]), "country_code": "NL", "party_id": "CPO", "id": "DEFAULT"}
        await prov.import_tariff(s, tariff)


async def _reserve(sim, rid: str, evse_uid: str, token: dict, minutes: int = 60) -> dict:  # type: ignore[no-untyped-def]
    expiry = utcnow() + timedelta(minutes=minutes)
    body = {"token": token, "expiry_date": iso(expiry), "reservation_id": rid, "location_id": "LOC1",
            "evse_uid": evse_uid}  # fmt: skip
    ref, response = await sim.command("RESERVE_NOW", body)
    assert response["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results)
    return sim.command_results[ref]


async def _reservation(db: Database, rid: str) -> Reservation:
    async with db.session() as s:
        row = await s.scalar(select(Reservation).where(Reservation.reservation_id == rid))
        assert row is not None, f"no reservation {rid}"
        return row


async def _cdrs(db: Database) -> list[Cdr]:
    async with db.session() as s:
        return list((await s.scalars(select(Cdr).order_by(Cdr.id))).all())


@pytest.fixture
async def charger(hub, sim, db: Database):  # type: ignore[no-untyped-def]
    """The hub with a real OCPP gateway as its gateway service, the eMSP registered, CP-R connected (it
    accepts ReserveNow and CancelReservation)."""
    from cpo_gateway.server import Gateway

    await _site(db)
    await connect(hub, sim)
    gw = Gateway(gateway_settings(db.url), db, "node-a", hooks=hub.hooks, services=hub.services)
    await gw.start("127.0.0.1", 0)
    hub.services.gateway = gw
    client: Client = await open_client(gw, "CP-R", "ocpp1.6")
    client.auto_reply = {"ReserveNow": {"status": "Accepted"}, "CancelReservation": {"status": "Accepted"}}
    await client.ok("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "R1"})
    try:
        yield client
    finally:
        await client.close()
        await gw.stop()


async def test_reserve_now_then_start_with_the_reservation_bills_the_reservation_time(
    hub, sim, charger
) -> None:  # type: ignore[no-untyped-def]
    """T7: OCPI RESERVE_NOW accepted by the charger -> reservation ACTIVE, made when the charger accepted,
    sent to the charger under the hub's own number (not the eMSP's id); the driver starts 13 minutes later
    with that reservationId (1.6 StartTransaction) -> USED and linked; the CDR starts at the reservation and
    bills example 16's reservation: 2.00 fee + 15 min (per 5 min) at 5.00/h = 3.25, total 8.75 (excl. VAT);
    it is pushed to the eMSP."""
    from tariffs.rating import rate_pending

    token = sim.make_token("RES-TOKEN-1")
    result = await _reserve(sim, "RES-1", "LOC1-E1", token)
    assert result["result"] == "ACCEPTED"
    row = await _reservation(hub.db, "RES-1")
    assert row.status == ReservationStatus.ACTIVE and row.made_at is not None
    frames = [charger.incoming.get_nowait() for _ in range(charger.incoming.qsize())]
    reserve = next(f for f in frames if f[2] == "ReserveNow")
    assert reserve[3]["reservationId"] == row.ocpp_reservation_id and reserve[3]["idTag"] == "RES-TOKEN-1"
    made = row.made_at

    advance_clock(13 * 60)
    start = made + timedelta(minutes=13)
    tx = (await charger.ok("StartTransaction", {"connectorId": 1, "idTag": "RES-TOKEN-1", "meterStart": 1000,
          "timestamp": iso(start), "reservationId": row.ocpp_reservation_id}))["transactionId"]  # fmt: skip
    advance_clock(60 * 60)
    await charger.ok("StopTransaction", {"transactionId": tx, "meterStop": 21000,
                                         "timestamp": iso(start + timedelta(hours=1))})  # fmt: skip
    assert await rate_pending(hub.db, hub.hooks.cdr) == 1
    (cdr,) = await _cdrs(hub.db)
    row = await _reservation(hub.db, "RES-1")
    assert row.status == ReservationStatus.USED and row.session_id == cdr.session_id
    assert cdr.data["total_reservation_cost"]["excl_vat"] == D("3.25")
    assert cdr.total_cost_excl_vat == D("8.75")
    assert cdr.start_date_time == made and cdr.data["start_date_time"] == format_rfc3339(made)
    first = cdr.data["charging_periods"][0]
    assert first["dimensions"] == [{"type": "RESERVATION_TIME", "volume": D("0.2167")}]
    assert cdr.data["session_id"]
    await sim.wait_for(lambda: any(c.get("id") == cdr.cdr_uid for c in sim.cdrs))


async def test_expired_reservation_becomes_one_cdr_without_session_id(hub, sim, charger) -> None:  # type: ignore[no-untyped-def]
    """T7: a reservation nobody started a session with is EXPIRED by the job once its expiry passed, with a
    reservation-only session (status RESERVATION, transaction ``reservation:<id>``) and exactly one CDR
    without session_id, from made_at to the expiry, billed with the reservation elements (example 16 has no
    RESERVATION_EXPIRES ones: 2.00 fee + 60 min at 5.00/h = 7.00), pushed like any CDR. A cancelled
    reservation is never billed."""
    from tariffs.rating import rate_pending
    from tariffs.reservation_job import ReservationJob

    job = ReservationJob(hub.db)
    await _reserve(sim, "RES-2", "LOC1-E2", sim.make_token("RES-TOKEN-2"))
    await _reserve(sim, "RES-3", "LOC1-E1", sim.make_token("RES-TOKEN-3"))
    ref, _ = await sim.command("CANCEL_RESERVATION", {"reservation_id": "RES-3"})
    await sim.wait_for(lambda: ref in sim.command_results)
    assert sim.command_results[ref]["result"] == "CANCELED_RESERVATION"
    assert (await _reservation(hub.db, "RES-3")).status == ReservationStatus.CANCELLED

    assert await job.run_once() == 0  # not yet expired
    row = await _reservation(hub.db, "RES-2")
    assert await job.run_once(row.expiry + timedelta(seconds=1)) == 1
    assert await job.run_once(row.expiry + timedelta(seconds=2)) == 0  # once
    row = await _reservation(hub.db, "RES-2")
    assert row.status == ReservationStatus.EXPIRED and row.session_id is not None
    async with hub.db.session() as s:
        cs = await s.get(ChargingSession, row.session_id)
        assert cs.status == SessionStatus.RESERVATION and cs.transaction_id == f"reservation:{row.id}"
    advance_clock(2 * 3600)
    assert await rate_pending(hub.db, hub.hooks.cdr) == 1
    assert await rate_pending(hub.db, hub.hooks.cdr) == 0
    (cdr,) = await _cdrs(hub.db)
    assert "session_id" not in cdr.data
    assert cdr.start_date_time == row.made_at and cdr.end_date_time == row.expiry
    assert cdr.total_cost_excl_vat == D("7.00") and cdr.total_energy_kwh == 0
    assert [d["type"] for p in cdr.data["charging_periods"] for d in p["dimensions"]] == ["RESERVATION_TIME"]
    await sim.wait_for(lambda: any(c.get("id") == cdr.cdr_uid for c in sim.cdrs))
    pushed = next(c for c in sim.cdrs if c.get("id") == cdr.cdr_uid)
    assert "session_id" not in pushed
    assert (await _reservation(hub.db, "RES-3")).status == ReservationStatus.CANCELLED


def _cli_price(tmp_path, n: int, periods: list[dict], end: str, *flags: str) -> dict:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from evhub.cli import app
    from kernel.jsonutil import loads

    (tmp_path / "t.json").write_text(EXAMPLES[n])
    cdr = {
        "start_date_time": periods[0]["start_date_time"],
        "end_date_time": end,
        "charging_periods": periods,
    }
    (tmp_path / "cdr.json").write_text(json.dumps(cdr))
    args = ["tariffs", "price", "--tariff", str(tmp_path / "t.json"), "--cdr", str(tmp_path / "cdr.json")]
    result = CliRunner().invoke(app, [*args, "--decimals", "string", *flags])
    assert result.exit_code == 0, result.output
    return loads(result.stdout)


def test_cli_price_reads_a_reservation_only_cdr_as_expired_and_can_be_told(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """T7: ``evhub tariffs price`` follows the OCPI input rule (example 17, one hour of RESERVATION_TIME only:
    6.00) and ``--reservation-expired`` forces the expired reading where it cannot be inferred (example 18,
    22 minutes reserved then charged: 7.00 as used, 8.50 with the reservation priced as expired)."""
    only = [
        {"start_date_time": "2026-03-02T09:00:00Z", "dimensions": [{"type": "RESERVATION_TIME", "volume": 1}]}
    ]
    out = _cli_price(tmp_path, 17, only, "2026-03-02T10:00:00Z")
    assert out["total_cost"]["excl_vat"] == "6.00"
    used = [
        {"start_date_time": "2026-03-02T09:00:00Z", "dimensions": [{"type": "RESERVATION_TIME", "volume": 0.366667}]},
        {"start_date_time": "2026-03-02T09:22:00Z", "dimensions": [{"type": "ENERGY", "volume": 20}, {"type": "TIME", "volume": 1}]},
    ]  # fmt: skip
    assert _cli_price(tmp_path, 18, used, "2026-03-02T10:22:00Z")["total_cost"]["excl_vat"] == "7.00"
    forced = _cli_price(tmp_path, 18, used, "2026-03-02T10:22:00Z", "--reservation-expired")
    assert forced["total_cost"]["excl_vat"] == "8.50"


@pytest.mark.parametrize("made_before_start", [timedelta(minutes=10), timedelta(minutes=-1)])
async def test_v201_transaction_event_reservation_id_uses_the_reservation(
    gateway, seeded, db: Database, made_before_start: timedelta
) -> None:  # type: ignore[no-untyped-def]
    """T7: a 2.0.1 TransactionEvent Started with ``reservationId`` ("the Id of the reservation that
    terminates as a result of this transaction") keeps it in the session; the reservation job then marks the
    reservation USED and linked instead of expiring it, also when it runs after the expiry; also when the
    charger's clock is a minute behind the hub's (its start stamped before ``made_at``)."""
    from tariffs.reservation_job import ReservationJob
    from tests.gateway.conftest import T0

    async with db.session() as s:
        cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == "CP201"))
        s.add(Reservation(reservation_id="R-201", ocpp_reservation_id=77, cpo_id=seeded.cpo_id, charge_point_id=cp.id,
                          status=ReservationStatus.ACTIVE, made_at=T0 - made_before_start,
                          expiry=T0 + timedelta(hours=1), data={}))  # fmt: skip
    c = await open_client(gateway, "CP201", "ocpp2.0.1")
    await c.ok(
        "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M2", "vendorName": "V"}}
    )
    event = {"eventType": "Started", "timestamp": iso(T0), "triggerReason": "Authorized", "seqNo": 0,
             "transactionInfo": {"transactionId": "TX-R"}, "evse": {"id": 1, "connectorId": 1},
             "idToken": {"idToken": "AABBCC01", "type": "ISO14443"}, "reservationId": 77}  # fmt: skip
    await c.ok("TransactionEvent", event)
    await c.close()
    assert await ReservationJob(db).run_once(T0 + timedelta(hours=2)) == 0
    async with db.session() as s:
        cs = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == "TX-R"))
        res = await s.scalar(select(Reservation).where(Reservation.reservation_id == "R-201"))
    assert cs.data["reservation_id"] == 77
    assert res.status == ReservationStatus.USED and res.session_id == cs.id
