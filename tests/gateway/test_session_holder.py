"""Whom a session is billed to is decided when it starts (issue 14): the gateway records the fleet, driver and
vehicle of the token it authorized a session with on the session (over a real OCPP 1.6 websocket), and the CDR
pricing makes later carries them, although the token moved to another fleet and got another driver while the
car was charging; a session whose token the gateway learns only at its stop records them then."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from cpo_gateway.server import Gateway
from evhub import lifecycle
from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Token
from portal.admin import add_fleet
from tariffs.rating import rate_pending
from tests.gateway.conftest import DEFAULT_TARIFF, T0, Seed, iso, open_client


def _energy(ts: Any, wh: int) -> dict[str, Any]:
    sv = {
        "value": str(wh),
        "context": "Sample.Periodic",
        "measurand": "Energy.Active.Import.Register",
        "unit": "Wh",
    }
    return {"timestamp": iso(ts), "sampledValue": [sv]}


async def _fleets_and_token(db: Database, token_id: int) -> tuple[int, int]:
    """Fleets Acme and Beta; the seeded fleet token AABBCC01 is Ann's (EV-1) in Acme."""
    acme, beta = await add_fleet(db, "Acme"), await add_fleet(db, "Beta")
    async with db.session() as s:
        token = await s.get(Token, token_id)
        assert token is not None
        token.fleet_id, token.driver_name, token.vehicle = acme.id, "Ann", "EV-1"
        await prov.import_tariff(s, DEFAULT_TARIFF)
    return acme.id, beta.id


async def _move(db: Database, token_id: int) -> None:
    """``evhub tokens update AABBCC01 --fleet Beta --driver-name Carl --vehicle EV-9``."""
    async with db.session() as s:
        token = await s.get(Token, token_id)
        assert token is not None
        changes = lifecycle.TokenChanges(fleet="Beta", driver_name="Carl", vehicle="EV-9")
        await lifecycle.update_token(s, token, changes)


async def _session(db: Database, tx: int) -> ChargingSession:
    async with db.session() as s:
        row = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == str(tx)))
        assert row is not None
        return row


async def _cdr(db: Database, session_id: int) -> Cdr:
    async with db.session() as s:
        row = await s.scalar(select(Cdr).where(Cdr.session_id == session_id))
        assert row is not None
        return row


async def test_a_token_moved_mid_session_leaves_the_session_with_the_fleet_it_started_in(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    acme, beta = await _fleets_and_token(db, seeded.fleet_token_id)
    c = await open_client(gateway, "CP16", "ocpp1.6")
    start = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000,
                                            "timestamp": iso(T0)})  # fmt: skip
    tx = start["transactionId"]
    started = await _session(db, tx)
    assert (started.fleet_id, started.driver_name, started.vehicle, started.holder_recorded) == (
        acme,
        "Ann",
        "EV-1",
        True,
    )
    await _move(db, seeded.fleet_token_id)  # while the car charges
    await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx,
                               "meterValue": [_energy(T0 + timedelta(minutes=30), 6000)]})  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 11000, "idTag": "AABBCC01",
                                   "timestamp": iso(T0 + timedelta(hours=1))})  # fmt: skip
    await c.close()
    assert await rate_pending(db, ()) == 1
    cdr = await _cdr(db, started.id)
    assert (cdr.fleet_id, cdr.driver_name, cdr.vehicle, cdr.holder_recorded) == (acme, "Ann", "EV-1", True)

    # the next session of the moved token is Beta's, Carl's
    c = await open_client(gateway, "CP16", "ocpp1.6")
    again = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 11000,
                                            "timestamp": iso(T0 + timedelta(hours=2))})  # fmt: skip
    await c.ok("StopTransaction", {"transactionId": again["transactionId"], "meterStop": 15000,
                                   "timestamp": iso(T0 + timedelta(hours=3))})  # fmt: skip
    await c.close()
    assert await rate_pending(db, ()) == 1
    later = await _cdr(db, (await _session(db, again["transactionId"])).id)
    assert (later.fleet_id, later.driver_name, later.vehicle) == (beta, "Carl", "EV-9")


async def test_a_token_first_known_at_the_stop_is_recorded_then(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    """A stop for a transaction whose start was never seen (an unknown session) names the token: its holder
    then is recorded, and the CDR carries it."""
    acme, _ = await _fleets_and_token(db, seeded.fleet_token_id)
    c = await open_client(gateway, "CP16", "ocpp1.6")
    await c.ok("MeterValues", {"connectorId": 1, "transactionId": 4711,
                               "meterValue": [_energy(T0, 1000)]})  # fmt: skip
    unknown = await _session(db, 4711)
    assert unknown.token_id is None and unknown.holder_recorded is False
    await c.ok("StopTransaction", {"transactionId": 4711, "meterStop": 9000, "idTag": "AABBCC01",
                                   "timestamp": iso(T0 + timedelta(hours=1))})  # fmt: skip
    await c.close()
    stopped = await _session(db, 4711)
    assert stopped.token_id == seeded.fleet_token_id
    assert (stopped.fleet_id, stopped.driver_name, stopped.holder_recorded) == (acme, "Ann", True)
