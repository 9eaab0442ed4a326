"""What the hub sends as OCPI Session objects is exactly OCPI (issue #13).

* S1 (internal fields leak): the hub's bookkeeping in a session's ``data`` (``ocpp16_start``,
  ``remote_start_id``, ``reservation_id``, ``seq_nos``, ``clock_suspect``) was copied into the Session the
  Sender interface serves and the push sends.
"""

from __future__ import annotations

from typing import Any

from cpo_gateway.events import SessionStarted
from cpo_gateway.session_store import _apply_start
from kernel.models import ChargingSession, Party
from ocpi.push.session_push import enqueue_session_update
from ocpi.render_objects import session_object
from tests.ocpi._helpers import connect, token_pk
from tests.world.sessions import seed_session
from tests.world.sites import T0, seed_charge_point, seed_cpo, seed_location

# OCPI 2.2.1 mod_sessions.asciidoc, "Session Object": every property the object has.
SPEC_SESSION_FIELDS = {
    "country_code",
    "party_id",
    "id",
    "start_date_time",
    "end_date_time",
    "kwh",
    "cdr_token",
    "auth_method",
    "authorization_reference",
    "location_id",
    "evse_uid",
    "connector_id",
    "meter_id",
    "currency",
    "charging_periods",
    "total_cost",
    "status",
    "last_updated",
}


async def _sessions(hub: Any, sim: Any) -> tuple[int, int]:
    """A 1.6 session with the bookkeeping the 1.6 path kept, and a 2.0.1 remote-started one through the
    store's own start step; returns both pks."""
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    cp = await seed_charge_point(hub.db, cpo, loc)
    await connect(hub, sim)
    await sim.push_token(sim.make_token("CARD-1"))
    token = await token_pk(hub.db, "CARD-1")
    v16 = await seed_session(hub.db, cpo, cp, loc, token, "SESS-16", tx="16")
    remote = await seed_session(hub.db, cpo, cp, loc, token, "SESS-RS", tx="rs")
    async with hub.db.session() as s:
        cs16 = await s.get(ChargingSession, v16)
        assert cs16 is not None
        cs16.data = {
            "ocpp16_start": {"connectorId": 1, "idTag": "CARD-1"},
            "clock_suspect": "charger stamp ahead",
            "total_cost": {"excl_vat": 1.0},
        }
        cs = await s.get(ChargingSession, remote)
        assert cs is not None
        start = SessionStarted("rs", 1, 1, "CARD-1", T0, remote_start_id=7, reservation_id=3, seq_no=0)
        _apply_start(cs, start, None, created=True)
        cs.data = {**(cs.data or {}), "seq_nos": [0, 1]}
    return v16, remote


async def test_the_session_objects_carry_only_the_spec_s_fields(hub, sim):
    """S1: the Session served (GET) and pushed (PUT) for a 1.6 session and a remote-started 2.0.1 one has only
    properties of the OCPI 2.2.1 Session object; the data the spec has (total_cost) is still sent."""
    pks = await _sessions(hub, sim)
    async with hub.db.session() as s:
        for pk in pks:
            cs = await s.get(ChargingSession, pk)
            assert cs is not None
            cpo = await s.get(Party, cs.cpo_id)
            assert cpo is not None
            obj = await session_object(s, cs, cpo)
            assert set(obj) <= SPEC_SESSION_FIELDS, set(obj) - SPEC_SESSION_FIELDS
            assert await enqueue_session_update(pk, s) == 1
    await sim.wait_for(lambda: {"SESS-16", "SESS-RS"} <= set(sim.sessions))
    assert sim.sessions["SESS-16"]["total_cost"] == {"excl_vat": 1.0}
    puts = [r for r in sim.log if r.method == "PUT" and "/sessions/" in r.path]
    assert len(puts) == 2
    for put in puts:
        assert set(put.body) <= SPEC_SESSION_FIELDS, set(put.body) - SPEC_SESSION_FIELDS
