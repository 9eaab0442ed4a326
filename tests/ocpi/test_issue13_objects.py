"""What the hub sends as OCPI Session objects is exactly OCPI (issue #13).

* S1 (internal fields leak): the hub's bookkeeping in a session's ``data`` (``ocpp16_start``,
  ``remote_start_id``, ``reservation_id``, ``seq_nos``, ``clock_suspect``) was copied into the Session the
  Sender interface serves and the push sends.
* S2 (auth method of a command start): a session started by the eMSP's START_SESSION said
  ``auth_method: WHITELIST``; OCPI AuthMethod ``COMMAND`` is "Authentication request has been sent by the eMSP".
* S3 (stale token state): a token PUT or PATCH older (by ``last_updated``) than the stored token overwrote it
  (a token the eMSP invalidated became valid again).
* S4 (remoteStartId): every 2.0.1 RequestStartTransaction carried ``remoteStartId: 1``; each request needs its
  own id (the charger returns it in the TransactionEvent of the transaction it starts).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from cpo_gateway.events import ChargerRef, SessionEnded, SessionStarted
from cpo_gateway.session_store import SessionStore, _apply_start
from evhub import provisioning as prov
from kernel.models import EVSE, ChargePointEvse, ChargingSession, Party
from kernel.models.roaming import OcpiAuthorization
from ocpi.gateway_adapter import OcppCommandAdapter
from ocpi.push.session_push import enqueue_session_update
from ocpi.render_objects import session_object
from tariffs.rating import rate_pending
from tests.ocpi._helpers import connect, seed_site, token_pk
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
    cpo, loc, cp = await seed_site(hub.db)
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


class ChargerSend:
    """The gateway's ``send`` as a 1.6 charger answers it; records the OCPP calls and whether the START_SESSION
    was already recorded when the charger got the call (it may start the transaction at once)."""

    def __init__(self, db: Any, status: str = "Accepted") -> None:
        self.db, self.status = db, status
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.marked_before_call: list[bool] = []

    async def send(self, identity: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((identity, action, payload))
        async with self.db.session() as s:
            rows = (
                await s.scalars(select(OcpiAuthorization).where(OcpiAuthorization.source == "command"))
            ).all()
        self.marked_before_call.append(bool(rows))
        return {"status": self.status}


async def _command_charger(hub: Any, sim: Any, uid: str) -> tuple[SessionStore, ChargerRef, ChargerSend]:
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    cp = await seed_charge_point(hub.db, cpo, loc, "CP-CMD")
    async with hub.db.session() as s:
        evses = (await s.scalars(select(EVSE).where(EVSE.location_id == loc).order_by(EVSE.id))).all()
        evse_map = {n: e.id for n, e in enumerate(evses, start=1)}
        for n, pk in evse_map.items():
            s.add(ChargePointEvse(charge_point_id=cp, ocpp_evse_id=n, evse_pk=pk))
        await prov.import_tariff(
            s,
            {
                "country_code": "NL",
                "party_id": "CPO",
                "id": "DEFAULT",
                "currency": "EUR",
                "elements": [{"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}],
                "last_updated": "2026-01-01T00:00:00Z",
            },
        )
    await connect(hub, sim)
    await sim.push_token(sim.make_token(uid))
    charger = ChargerSend(hub.db)
    hub.services.gateway = OcppCommandAdapter(charger, hub.db)
    ref = ChargerRef(cp, "CP-CMD", cpo, loc, "1.6", "Accepted", evse_map)
    return SessionStore(hub.db, hub.hooks), ref, charger


async def test_a_session_started_by_start_session_says_command_in_session_and_cdr(hub, sim):
    """S2: START_SESSION (no authorization_reference) accepted by a 1.6 charger, which then starts the
    transaction with the whitelisted token: the Session pushed and the CDR say ``auth_method: COMMAND``; a later
    session of the same token started at the charger (no command) says WHITELIST."""
    from cpo_gateway.authorization import Authorizer

    store, charger_ref, charger = await _command_charger(hub, sim, "APP-CMD")
    body = {"token": sim.tokens[("APP-CMD", "RFID")], "location_id": "LOC1", "evse_uid": "LOC1-E1"}
    ref, response = await sim.command("START_SESSION", body)
    assert response["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results)
    assert sim.command_results[ref]["result"] == "ACCEPTED"
    assert [c[1] for c in charger.calls] == ["RemoteStartTransaction"] and charger.marked_before_call == [
        True
    ]
    auth = await Authorizer(hub.db, hub.services).authorize("APP-CMD", "RFID", charge_point_id=charger_ref.id)
    tx, _ = await store.start_v16(charger_ref, SessionStarted(None, 1, 1, "APP-CMD", T0, Decimal(0)), auth)
    async with hub.db.session() as s:
        cs = await s.scalar(select(ChargingSession).where(ChargingSession.id_tag == "APP-CMD"))
        assert cs is not None
    assert cs.auth_method == "COMMAND"
    await sim.wait_for(lambda: cs.session_uid in sim.sessions)
    assert sim.sessions[cs.session_uid]["auth_method"] == "COMMAND"
    assert "authorization_reference" not in sim.sessions[cs.session_uid]
    await store.ended(
        charger_ref, SessionEnded(tx, T0 + timedelta(hours=1), Decimal(12000), "Local", "APP-CMD")
    )
    assert await rate_pending(hub.db, hub.hooks.cdr) == 1
    await sim.wait_for(lambda: len(sim.cdrs) == 1)
    assert sim.cdrs[0]["auth_method"] == "COMMAND"
    # the driver's own start later (no command): WHITELIST
    later = SessionStarted(None, 2, 2, "APP-CMD", T0 + timedelta(hours=2), Decimal(0))
    await store.start_v16(charger_ref, later, auth)
    async with hub.db.session() as s:
        methods = sorted(
            (
                await s.scalars(
                    select(ChargingSession.auth_method).where(ChargingSession.id_tag == "APP-CMD")
                )
            ).all()
        )
    assert methods == ["COMMAND", "WHITELIST"]


async def test_a_start_session_the_charger_rejects_marks_nothing(hub, sim):
    """S2: a RemoteStart the charger rejects leaves no COMMAND mark: the token's next session at the charger
    says WHITELIST."""
    from cpo_gateway.authorization import Authorizer

    store, charger_ref, charger = await _command_charger(hub, sim, "APP-REJ")
    charger.status = "Rejected"
    body = {"token": sim.tokens[("APP-REJ", "RFID")], "location_id": "LOC1", "evse_uid": "LOC1-E1"}
    ref, response = await sim.command("START_SESSION", body)
    assert response["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results)
    assert sim.command_results[ref]["result"] == "REJECTED"
    auth = await Authorizer(hub.db, hub.services).authorize("APP-REJ", "RFID", charge_point_id=charger_ref.id)
    await store.start_v16(charger_ref, SessionStarted(None, 1, 1, "APP-REJ", T0, Decimal(0)), auth)
    async with hub.db.session() as s:
        cs = await s.scalar(select(ChargingSession).where(ChargingSession.id_tag == "APP-REJ"))
        assert cs is not None
    assert cs.auth_method == "WHITELIST"


async def test_an_older_token_put_or_patch_never_overwrites_a_newer_state(hub, sim):
    """S3: valid at 10:00, invalidated at 10:02; a PUT and a PATCH of 10:01 (late, valid again) are answered
    success and not applied; a newer PATCH (10:03) is applied."""
    from kernel.models import Token

    await seed_cpo(hub.db)
    await connect(hub, sim)
    first = sim.make_token("STALE-1")
    stamps = {m: f"2026-12-01T10:0{m}:00Z" for m in range(4)}
    assert (await sim.push_token({**first, "last_updated": stamps[0]})).status_code == 200
    assert (await sim.push_token({**first, "valid": False, "last_updated": stamps[2]})).json()[
        "status_code"
    ] == 1000
    late = await sim.push_token({**first, "valid": True, "last_updated": stamps[1]})
    assert late.status_code == 200 and late.json()["status_code"] == 1000
    url = f"{sim._hub_url('tokens')}/{first['country_code']}/{first['party_id']}/STALE-1"
    patch = await sim._call(
        "PATCH",
        url,
        sim.hub_token or "",
        json={"valid": True, "last_updated": stamps[1]},
        params={"type": "RFID"},
        headers=sim.routing(None, None),
    )
    assert patch.status_code == 200 and patch.json()["status_code"] == 1000
    async with hub.db.session() as s:
        token = await s.scalar(select(Token).where(Token.uid == "STALE-1"))
        assert token is not None
        assert token.valid is False and token.last_updated.isoformat().startswith("2026-12-01T10:02")
    newer = await sim._call(
        "PATCH",
        url,
        sim.hub_token or "",
        json={"whitelist": "NEVER", "last_updated": stamps[3]},
        params={"type": "RFID"},
        headers=sim.routing(None, None),
    )
    assert newer.json()["status_code"] == 1000
    async with hub.db.session() as s:
        token = await s.scalar(select(Token).where(Token.uid == "STALE-1"))
        assert token is not None
        assert (token.valid, token.whitelist) == (False, "NEVER")


async def test_every_2_0_1_remote_start_has_its_own_remote_start_id(hub, sim):
    """S4: two START_SESSIONs on a 2.0.1 charger send two RequestStartTransaction with different
    ``remoteStartId``; a restarted process (a new id source) after a while does not reuse the old ids; an id the
    operator gives is kept."""
    from datetime import UTC, datetime

    from cpo_gateway.commands import RemoteStartIds, build
    from kernel.clock import pinned
    from kernel.models import ChargePoint, OcppVersion

    _store, charger_ref, charger = await _command_charger(hub, sim, "APP-201")
    async with hub.db.session() as s:
        cp = await s.get(ChargePoint, charger_ref.id)
        assert cp is not None
        cp.ocpp_version = OcppVersion.V201
    body = {"token": sim.tokens[("APP-201", "RFID")], "location_id": "LOC1", "evse_uid": "LOC1-E1"}
    for _ in range(2):
        ref, response = await sim.command("START_SESSION", body)
        assert response["result"] == "ACCEPTED"
        await sim.wait_for(lambda ref=ref: ref in sim.command_results)
    ids = [
        payload["remoteStartId"]
        for _, action, payload in charger.calls
        if action == "RequestStartTransaction"
    ]
    assert len(ids) == 2 and ids[0] != ids[1], ids
    with pinned(datetime(2026, 12, 1, 10, 0, tzinfo=UTC)):
        before = RemoteStartIds()
        old = [before.next() for _ in range(5)]
    with pinned(datetime(2026, 12, 1, 10, 1, tzinfo=UTC)):
        assert RemoteStartIds().next() > max(old) and len(set(old)) == 5
    assert build("remote-start", "2.0.1", {"id_tag": "A", "remote_start_id": 42})[1]["remoteStartId"] == 42
