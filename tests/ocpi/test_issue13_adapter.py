"""The gateway adapter's choices (issue 13): which charger a command goes to, and the ActiveChargingProfile's
start.

A location-wide RESERVE_NOW (no ``evse_uid``) of a location whose EVSEs are on several chargers goes to the
location's first charger (the lowest charger pk) and its lowest-numbered EVSE, on SQLite and PostgreSQL alike:
one choice, shared by the reservation row (:mod:`ocpi.reservation_store`) and the OCPP call
(:mod:`ocpi.gateway_adapter`); the CANCEL_RESERVATION goes to the row's charger. A GetCompositeSchedule answer's
``scheduleStart`` becomes an OCPI DateTime in UTC, and an answer without one starts at the time of the request.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kernel.models import EVSE, ChargePointEvse, Location, Reservation
from kernel.timeutil import parse_datetime, utcnow
from ocpi.gateway_adapter import OcppCommandAdapter, serving_charger
from tests.ocpi._helpers import connect, token_pk
from tests.world.sessions import seed_session
from tests.world.sites import seed_charge_point, seed_cpo, seed_location


class Chargers:
    """A gateway whose every charger accepts; it records (identity, action, payload)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    async def send(self, identity: str, action: str, payload: Any, timeout: Any = None) -> Any:
        self.sent.append((identity, action, payload))
        return {"status": "Accepted"}


async def _crossed_world(hub: Any) -> dict[str, int]:
    """LOC1 with four EVSEs on two chargers, crossed: the location's first EVSEs are on the second charger
    (CP-B, numbered 2 and 1), its last ones on the first (CP-A, numbered 2 and 1); the mappings are written
    in neither order."""
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1", evses=4)
    cp_a = await seed_charge_point(hub.db, cpo, loc, "CP-A")
    cp_b = await seed_charge_point(hub.db, cpo, loc, "CP-B")
    async with hub.db.session() as s:
        e1, e2, e3, e4 = (
            await s.scalars(select(EVSE.id).where(EVSE.location_id == loc).order_by(EVSE.id))
        ).all()
        for cp, number, evse in ((cp_b, 2, e1), (cp_a, 2, e3), (cp_b, 1, e2), (cp_a, 1, e4)):
            s.add(ChargePointEvse(charge_point_id=cp, ocpp_evse_id=number, evse_pk=evse))
    return {"cpo": cpo, "loc": loc, "cp_a": cp_a, "cp_b": cp_b, "e4": e4}


async def test_the_charger_of_a_location_or_evse_is_chosen_in_one_order(hub):
    """:func:`serving_charger`: a location's first charger (lowest pk) and its lowest EVSE number; an EVSE's
    own charger and number when one is named; None for an EVSE nobody serves."""
    world = await _crossed_world(hub)
    async with hub.db.session() as s:
        loc = await s.get(Location, world["loc"])
        assert loc is not None
        whole = await serving_charger(s, loc.id, None)
        one = await serving_charger(s, loc.id, "LOC1-E1")
        unknown = await serving_charger(s, loc.id, "LOC1-E9")
    assert whole is not None and one is not None and unknown is None
    assert (whole.identity, whole.ocpp_evse_id, whole.evse_pk) == ("CP-A", 1, world["e4"])
    assert (one.identity, one.charge_point_id, one.ocpp_evse_id) == ("CP-B", world["cp_b"], 2)


async def test_a_location_wide_reservation_and_its_row_name_the_same_charger(hub, sim):
    """RESERVE_NOW without ``evse_uid``: the ReserveNow goes to CP-A (the location's first charger), the
    reservation row names CP-A, and CANCEL_RESERVATION asks CP-A only."""
    world = await _crossed_world(hub)
    await connect(hub, sim)
    await sim.push_token(sim.make_token("CARD-1"))
    gateway = Chargers()
    hub.services.gateway = gateway
    token = sim.tokens[("CARD-1", "RFID")]
    bodies = {
        "RESERVE_NOW": {
            "token": token,
            "expiry_date": "2026-12-01T10:00:00Z",
            "reservation_id": "R-WIDE",
            "location_id": "LOC1",
        },
        "CANCEL_RESERVATION": {"reservation_id": "R-WIDE"},
    }
    for command, body in bodies.items():
        ref, response = await sim.command(command, body)
        assert response["result"] == "ACCEPTED", response
        await sim.wait_for(lambda ref=ref: ref in sim.command_results)
        assert sim.command_results[ref]["result"] in ("ACCEPTED", "CANCELED_RESERVATION")
    async with hub.db.session() as s:
        row = await s.scalar(select(Reservation).where(Reservation.reservation_id == "R-WIDE"))
    assert row is not None
    assert row.charge_point_id == world["cp_a"]
    assert [(identity, action) for identity, action, _ in gateway.sent] == [
        ("CP-A", "ReserveNow"),
        ("CP-A", "CancelReservation"),
    ], gateway.sent
    reserve, cancel = gateway.sent[0][2], gateway.sent[1][2]
    assert reserve["reservationId"] == cancel["reservationId"] == row.ocpp_reservation_id


async def test_the_active_charging_profile_starts_in_utc_or_at_the_request(hub, sim):
    """``scheduleStart`` given with an offset is the same instant in UTC (``Z``); an ``Accepted`` answer without
    one (optional in OCPP 1.6) starts when the hub asked: the charger calculates "from the moment the request
    PDU is received"."""
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    cp = await seed_charge_point(hub.db, cpo, loc, "CP-1")
    async with hub.db.session() as s:
        evse = await s.scalar(select(EVSE.id).where(EVSE.location_id == loc).order_by(EVSE.id))
        assert evse is not None
        s.add(ChargePointEvse(charge_point_id=cp, ocpp_evse_id=1, evse_pk=evse))
    await connect(hub, sim)
    await sim.push_token(sim.make_token("CARD-1"))
    await seed_session(hub.db, cpo, cp, loc, await token_pk(hub.db, "CARD-1"), "SESS-1", tx="42")
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}
    answers = iter(
        [
            {
                "status": "Accepted",
                "scheduleStart": "2026-03-01T09:00:00+01:00",
                "chargingSchedule": schedule,
            },
            {"status": "Accepted", "chargingSchedule": schedule},
        ]
    )
    received: list[Any] = []

    class Charger:
        async def send(self, identity: str, action: str, payload: Any, timeout: Any = None) -> Any:
            received.append(utcnow())
            return next(answers)

    adapter = OcppCommandAdapter(Charger(), hub.db)
    given = await adapter.get_active_charging_profile(cpo_id=cpo, session_uid="SESS-1", duration=600)
    before = utcnow()
    absent = await adapter.get_active_charging_profile(cpo_id=cpo, session_uid="SESS-1", duration=600)
    assert given["profile"]["start_date_time"] == "2026-03-01T08:00:00Z"
    start = absent["profile"]["start_date_time"]
    assert isinstance(start, str) and start.endswith("Z"), start
    assert (
        before.replace(microsecond=before.microsecond // 1000 * 1000) <= parse_datetime(start) <= received[1]
    )
