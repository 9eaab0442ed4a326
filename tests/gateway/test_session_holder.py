"""Whom a session is billed to is decided when it starts (issue 14): the gateway records the fleet, driver and
vehicle of the token it authorized a session with on the session (over a real OCPP 1.6 websocket), and the CDR
pricing makes later carries them, although the token moved to another fleet and got another driver while the
car was charging; a session whose token the gateway learns only at its stop records them then."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from cpo_gateway.server import Gateway
from evhub import lifecycle
from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Token
from portal.admin import add_fleet
from tariffs.rating import rate_pending
from tests.gateway.conftest import DEFAULT_TARIFF, T0, Client, Seed, iso, open_client

ADMISSION_PATIENCE = 60.0
"""Seconds CP16 keeps coming back while the gateway answers its upgrade 503 (see :func:`_cp16`)."""


async def _cp16(gateway: Gateway) -> Client:
    """CP16 connected over OCPP 1.6, as a charger connects: admission control answers an upgrade 503 with
    Retry-After when the process cannot admit it in time (on a loaded box, the upgrade budget runs out), and the
    charger comes back. This test is about the session's holder, not admission (tests/gateway/
    test_charger_auth_admission.py), so it comes back until admitted, at most :data:`ADMISSION_PATIENCE`
    seconds; any other refusal fails at once."""
    deadline = time.monotonic() + ADMISSION_PATIENCE
    while True:
        try:
            return await open_client(gateway, "CP16", "ocpp1.6", open_timeout=ADMISSION_PATIENCE)
        except InvalidStatus as refused:
            answer = refused.response
            if answer.status_code != 503:
                raise
            assert time.monotonic() < deadline, (
                f"CP16 not admitted within {ADMISSION_PATIENCE} s: last answer 503 {answer.body!r}"
            )
        await asyncio.sleep(0.05)  # the next attempt (polling, not a wait the test relies on)


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
    c = await _cp16(gateway)
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
    c = await _cp16(gateway)
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
    c = await _cp16(gateway)
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
