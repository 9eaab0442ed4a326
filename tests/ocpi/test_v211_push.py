"""What the hub sends to an OCPI 2.1.1 partner (issue 13, item 4): every push of the ``ocpi`` outbox channel, the
command results at its ``response_url``, real-time authorization and the tokens pull, in 2.1.1 form.

The partner is a row at version 2.1.1 with 2.1.1 endpoints ({identifier, url}) and a 2.1.1 receiver built here
(:class:`Receiver211`, an ASGI app on the tests' in-process network): it records every request and answers
as a 2.1.1 eMSP would. Every body is shape-checked against the 2.1.1 field tables (:mod:`tests.ocpi._shapes`),
and the requests carry the raw token (``Authorization: Token <token>``) and no routing headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from cpo_gateway.authorization import Authorizer
from cpo_gateway.events import SessionEnded, SessionStarted
from kernel.domain.tokens import OcpiToken
from kernel.models import (
    EVSE,
    Cdr,
    ChargingSession,
    Location,
    Party,
    PartyRole,
    TariffVersion,
    Token,
)
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, PartnerStatus
from ocpi.modules.tokens import store_token
from ocpi.push.location_push import enqueue_evse_status, enqueue_location
from ocpi.push.outbox_message import queue_push
from ocpi.push.tariff_push import enqueue_tariff, enqueue_tariff_delete
from tariffs.rating import rate_pending
from tests.ocpi._helpers import connect, wait_until
from tests.ocpi._network import InProcessNetwork
from tests.ocpi._pushes import meter, seed_priced_charger
from tests.ocpi._shapes import assert_exact
from tests.world.sites import T0, seed_cpo, seed_location

HOST = "emsp211.test"
TOKEN = "token-the-hub-presents-211"
MODULES = ("locations", "sessions", "cdrs", "tariffs", "tokens", "commands")
ROUTING = {"ocpi-from-country-code", "ocpi-from-party-id", "ocpi-to-country-code", "ocpi-to-party-id"}


@dataclass
class Seen:
    method: str
    path: str  # below /ocpi/emsp/2.1.1/
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class Receiver211:
    """A 2.1.1 eMSP's interfaces: Receivers of locations, sessions, cdrs, tariffs and command results that
    record what they get; a tokens list (paginated) and real-time authorization."""

    seen: list[Seen] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    page: int = 2
    app: FastAPI = field(init=False)

    def __post_init__(self) -> None:
        self.app = FastAPI()

        @self.app.api_route("/ocpi/emsp/2.1.1/{rest:path}", methods=["GET", "PUT", "PATCH", "POST", "DELETE"])
        async def any_call(rest: str, request: Request) -> JSONResponse:
            raw = await request.body()
            body = json.loads(raw, parse_float=Decimal) if raw else None
            query = parse_qs(request.url.query)
            self.seen.append(Seen(request.method, rest, query, body, dict(request.headers)))
            if request.headers.get("authorization") != f"Token {TOKEN}":
                return JSONResponse(_envelope(None, 2001, "bad token"), status_code=401)
            headers: dict[str, str] = {}
            data: Any = None
            if request.method == "GET" and rest == "tokens":
                offset = int(query.get("offset", ["0"])[0])
                data = self.tokens[offset : offset + self.page]
                if offset + self.page < len(self.tokens):
                    following = request.url.replace_query_params(offset=offset + self.page)
                    headers["Link"] = f'<{following}>; rel="next"'
            elif request.method == "POST" and rest.startswith("tokens/GONE"):  # 2.1.1 has no 2004
                return JSONResponse(_envelope(None, 2000, "unknown token"), status_code=404)
            elif request.method == "POST" and rest.endswith("/authorize"):
                data = {"allowed": "ALLOWED", "location": body} if body else {"allowed": "ALLOWED"}
            return JSONResponse(_envelope(data), headers=headers)

    def of(self, method: str, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.startswith(prefix)]


def _envelope(data: Any, code: int = 1000, message: str = "Success") -> dict[str, Any]:
    out = {"status_code": code, "status_message": message, "timestamp": "2026-03-01T08:00:00Z"}
    if data is not None:
        out["data"] = data
    return out


def assert_plain_211(seen: Seen) -> None:
    """The raw token (no base64) and no routing headers."""
    assert seen.headers["authorization"] == f"Token {TOKEN}"
    assert not ROUTING & {h.lower() for h in seen.headers}


async def add_partner_211(db, emsp_cc: str = "DE", emsp_pid: str = "EMV") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A registered 2.1.1 partner (one eMSP party) at :data:`HOST`: (partner id, party pk)."""
    async with db.session() as s:
        party = Party(country_code=emsp_cc, party_id=emsp_pid, role=PartyRole.EMSP, name="2.1.1 eMSP")
        s.add(party)
        await s.flush()
        base = f"http://{HOST}/ocpi/emsp/2.1.1"
        partner = OcpiPartner(
            name="2.1.1 eMSP",
            status=PartnerStatus.REGISTERED,
            version="2.1.1",
            versions_url=f"http://{HOST}/ocpi/emsp/versions",
            outgoing_token=TOKEN,
            endpoints=[{"identifier": m, "url": f"{base}/{m}"} for m in MODULES],
        )
        partner.roles.append(
            OcpiPartnerRole(party_pk=party.id, country_code=emsp_cc, party_id=emsp_pid, role="EMSP")
        )
        s.add(partner)
        await s.flush()
        return partner.id, party.id


async def add_token(db, party_pk: int, uid: str, **extra: Any) -> Token:  # type: ignore[no-untyped-def]
    body = {
        "country_code": "DE",
        "party_id": "EMV",
        "uid": uid,
        "type": "RFID",
        "contract_id": f"DE-EMV-C{uid[-6:]}",
        "issuer": "2.1.1 eMSP",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": "2026-03-01T07:00:00Z",
        **extra,
    }
    async with db.session() as s:
        token = await store_token(s, party_pk, OcpiToken.model_validate(body))
        assert token is not None
        return token


async def _world(hub, network: InProcessNetwork) -> tuple[Receiver211, int, int, int, int]:  # type: ignore[no-untyped-def]
    """(receiver, partner id, eMSP party pk, CPO pk, location pk)."""
    receiver = Receiver211()
    network.serve(HOST, receiver.app)
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    partner_id, party_pk = await add_partner_211(hub.db)
    return receiver, partner_id, party_pk, cpo, loc


async def test_location_evse_and_connector_pushes_arrive_in_211_form(hub, sim, network) -> None:
    receiver, partner_id, _party, cpo, loc = await _world(hub, network)
    await connect(hub, sim)  # a 2.2.1 partner beside it: unchanged
    async with hub.db.session() as s:
        assert await enqueue_location(loc, s) == 2
    await wait_until(lambda: bool(receiver.of("PUT", "locations/")), "the Location PUT")
    put = receiver.of("PUT", "locations/")[0]
    assert put.path == "locations/NL/CPO/LOC1"
    assert_exact(put.body, "Location", "2.1.1")
    assert put.body["evses"][0]["connectors"][0]["voltage"] == 230  # 2.2.1 max_voltage
    assert_plain_211(put)
    await sim.wait_for(lambda: "LOC1" in sim.locations)
    assert_exact(sim.locations["LOC1"], "Location")
    # an EVSE status PATCH (path depth 4: an EVSE)
    async with hub.db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == "LOC1-E1"))
        assert await enqueue_evse_status(evse, s, "CHARGING") == 2
    await wait_until(lambda: bool(receiver.of("PATCH", "locations/")), "the EVSE PATCH")
    patch = receiver.of("PATCH", "locations/")[0]
    assert patch.path == "locations/NL/CPO/LOC1/LOC1-E1" and patch.body["status"] == "CHARGING"
    assert_exact(patch.body, "EVSE", "2.1.1", partial=True)
    assert_plain_211(patch)
    # a Connector PATCH (path depth 5): tariff_ids (2.2.1) is tariff_id (2.1.1)
    async with hub.db.session() as s:
        partner = await s.get(OcpiPartner, partner_id)
        cpo_row = await s.get(Party, cpo)
        assert partner is not None and cpo_row is not None
        await queue_push(
            s,
            partner,
            partner.roles[0],
            cpo_row,
            module="locations",
            method="PATCH",
            path="/NL/CPO/LOC1/LOC1-E1/1",
            body={"tariff_ids": ["T1"], "last_updated": "2026-03-01T08:05:00Z"},
            key=str(loc),
        )
    await wait_until(lambda: len(receiver.of("PATCH", "locations/")) == 2, "the Connector PATCH")
    conn = receiver.of("PATCH", "locations/")[1]
    assert conn.path == "locations/NL/CPO/LOC1/LOC1-E1/1"
    assert conn.body == {"tariff_id": "T1", "last_updated": "2026-03-01T08:05:00Z"}
    assert_exact(conn.body, "Connector", "2.1.1", partial=True)


async def test_a_location_the_partner_may_no_longer_see_has_every_evse_removed(hub, network) -> None:
    receiver, _partner_id, _party, _cpo, loc = await _world(hub, network)

    async def publish(value: bool) -> None:
        async with hub.db.session() as s:
            row = await s.get(Location, loc)
            assert row is not None
            row.publish = value
            await enqueue_location(loc, s)

    # each PUT delivered before the next: a later PUT of the location supersedes one still unsent
    await publish(True)
    await wait_until(lambda: len(receiver.of("PUT", "locations/")) == 1, "the first Location PUT")
    await publish(False)  # 2.2.1 partners get it once more with publish: false
    await wait_until(lambda: len(receiver.of("PUT", "locations/")) == 2, "the hidden Location PUT")
    await publish(True)
    await wait_until(lambda: len(receiver.of("PUT", "locations/")) == 3, "three Location PUTs")
    statuses = [[e["status"] for e in p.body["evses"]] for p in receiver.of("PUT", "locations/")]
    assert statuses == [["AVAILABLE"] * 2, ["REMOVED"] * 2, ["AVAILABLE"] * 2]
    for put in receiver.of("PUT", "locations/"):
        assert_exact(put.body, "Location", "2.1.1")


async def test_a_backlog_goes_out_in_the_version_the_partner_has_at_delivery(hub, network) -> None:
    receiver = Receiver211()
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    partner_id, _party = await add_partner_211(hub.db)
    async with hub.db.session() as s:
        partner = await s.get(OcpiPartner, partner_id)
        assert partner is not None
        partner.version = "2.2.1"  # queued while the partner spoke 2.2.1 ...
    async with hub.db.session() as s:
        assert await enqueue_location(loc, s) == 1
    await hub.dispatched()  # ... and could not be reached (nothing serves HOST yet)
    async with hub.db.session() as s:
        partner = await s.get(OcpiPartner, partner_id)
        assert partner is not None and partner.last_error_at is not None
        partner.version = "2.1.1"  # it re-registered with 2.1.1
    network.serve(HOST, receiver.app)
    await wait_until(lambda: bool(receiver.of("PUT", "locations/")), "the Location PUT")
    put = receiver.of("PUT", "locations/")[0]
    assert_exact(put.body, "Location", "2.1.1")
    assert_plain_211(put)


async def test_session_put_patches_and_cdr_arrive_in_211_form_in_order(hub, network) -> None:
    receiver, _partner_id, party_pk, cpo, loc = await _world(hub, network)
    await add_token(hub.db, party_pk, "CARD-211")
    store, charger = await seed_priced_charger(hub, cpo, loc, "CP-211")
    auth = await Authorizer(hub.db, hub.services).authorize("CARD-211", "RFID", charge_point_id=charger.id)
    assert auth.accepted
    tx, _opened = await store.start_v16(
        charger, SessionStarted(None, 1, 1, "CARD-211", T0, Decimal(1000)), auth
    )
    async with hub.db.session() as s:
        cs = await s.scalar(select(ChargingSession).where(ChargingSession.id_tag == "CARD-211"))
        assert cs is not None
        sid, uid = cs.id, cs.session_uid
    await wait_until(lambda: bool(receiver.of("PUT", "sessions/")), "the Session PUT")
    put = receiver.of("PUT", "sessions/")[0]
    assert put.path == f"sessions/NL/CPO/{uid}"
    assert_exact(put.body, "Session", "2.1.1")
    assert_plain_211(put)
    # 2.1.1 embeds the Location, with only the session's EVSE and connector
    assert put.body["location"]["id"] == "LOC1"
    assert [e["uid"] for e in put.body["location"]["evses"]] == ["LOC1-E1"]
    assert put.body["auth_id"] == "DE-EMV-CRD-211"  # the contract_id
    # two meter readings: two PATCHes, each with every period so far (2.1.1 PATCH replaces the list)
    await meter(hub.db, sid, 15, 4000)
    # delivered before the next reading: a PATCH still queued would take the next one in (coalesced)
    await wait_until(lambda: len(receiver.of("PATCH", "sessions/")) == 1, "the first Session PATCH")
    await meter(hub.db, sid, 30, 6500)
    await wait_until(lambda: len(receiver.of("PATCH", "sessions/")) == 2, "the Session PATCHes")
    first, second = receiver.of("PATCH", "sessions/")
    for patch in (first, second):
        assert_exact(patch.body, "Session", "2.1.1", partial=True)
        assert_plain_211(patch)
    assert len(first.body["charging_periods"]) == 1 and len(second.body["charging_periods"]) == 2
    assert second.body["kwh"] == Decimal("5.5")
    # the session ends and is priced: the CDR POST, in 2.1.1 form, with the same money
    await store.ended(charger, SessionEnded(tx, T0 + timedelta(hours=1), Decimal(12000), "Local", "CARD-211"))
    assert await rate_pending(hub.db, hub.hooks.cdr) == 1
    await wait_until(lambda: bool(receiver.of("POST", "cdrs")), "the CDR POST")
    post = receiver.of("POST", "cdrs")[0]
    assert post.path == "cdrs"
    assert_exact(post.body, "CDR", "2.1.1")
    assert_plain_211(post)
    async with hub.db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.session_id == sid))
        assert cdr is not None
        stored = cdr.data
    assert post.body["total_cost"] == Decimal(str(stored["total_cost"]["excl_vat"]))
    for key in ("total_energy", "total_time"):
        assert post.body[key] == Decimal(str(stored[key]))
    assert post.body["location"]["evses"][0]["connectors"][0]["voltage"] == 230  # from the location now
    # in order: the PUT, then the PATCHes, the last one COMPLETED (the session's messages and the CDR's are
    # different objects: the COMPLETED PATCH may arrive before or after the CDR)
    await wait_until(
        lambda: receiver.of("PATCH", "sessions/")[-1].body.get("status") == "COMPLETED", "the COMPLETED PATCH"
    )
    order = [(s.method, s.path.split("/")[0]) for s in receiver.seen]
    assert order.index(("PUT", "sessions")) < order.index(("PATCH", "sessions"))


async def test_tariff_put_and_delete_arrive_in_211_form(hub, network) -> None:
    receiver, _partner_id, _party, cpo, _loc = await _world(hub, network)
    async with hub.db.session() as s:
        tv = TariffVersion(
            cpo_id=cpo,
            tariff_id="T211",
            version=1,
            currency="EUR",
            source="import",
            data={
                "id": "T211",
                "currency": "EUR",
                "type": "REGULAR",
                "tariff_alt_text": [{"language": "en", "text": "0.30/kWh"}],
                "elements": [
                    {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21.0, "step_size": 1}]}
                ],
                "last_updated": "2026-03-01T08:00:00Z",
            },
            last_updated=T0,
        )
        s.add(tv)
        await s.flush()
        assert await enqueue_tariff(tv, s) == 1
    await wait_until(lambda: bool(receiver.of("PUT", "tariffs/")), "the Tariff PUT")
    put = receiver.of("PUT", "tariffs/")[0]
    assert put.path == "tariffs/NL/CPO/T211"
    assert_exact(put.body, "Tariff", "2.1.1")
    assert_plain_211(put)
    assert put.body["elements"][0]["price_components"][0]["price"] == Decimal("0.30")  # excl. VAT
    async with hub.db.session() as s:
        assert await enqueue_tariff_delete(cpo, "T211", s) == 1
    await wait_until(lambda: bool(receiver.of("DELETE", "tariffs/")), "the Tariff DELETE")
    delete = receiver.of("DELETE", "tariffs/")[0]
    assert delete.path == "tariffs/NL/CPO/T211" and delete.body is None
    assert_plain_211(delete)


async def test_command_results_at_the_211_response_url(hub, network) -> None:
    receiver, partner_id, _party, _cpo, _loc = await _world(hub, network)
    runner = hub.platform.commands
    assert runner is not None
    answers = {"A": "ACCEPTED", "B": "EVSE_OCCUPIED", "C": None}  # None: the charger never answers

    async def charger(ref: str) -> str:
        answer = answers[ref]
        if answer is None:
            await hub_never()
        return str(answer)

    async def hub_never() -> None:
        import asyncio

        await asyncio.Event().wait()

    for ref in answers:
        async with hub.db.session() as s:
            await runner.submit_call(
                s,
                lambda ref=ref: charger(ref),
                response_url=f"http://{HOST}/ocpi/emsp/2.1.1/commands/START_SESSION/{ref}",
                partner_id=partner_id,
                routing={},
                module="commands",
                command="START_SESSION",
                allowed={"ACCEPTED", "EVSE_OCCUPIED", "REJECTED", "TIMEOUT", "FAILED"},
            )
    await wait_until(lambda: len(receiver.of("POST", "commands/")) == 3, "three command results", timeout=15)
    results = {s.path.rsplit("/", 1)[1]: s for s in receiver.of("POST", "commands/")}
    for seen in results.values():
        assert_exact(seen.body, "CommandResponse", "2.1.1")
        assert_plain_211(seen)
    assert results["A"].body == {"result": "ACCEPTED"}
    assert results["B"].body == {"result": "REJECTED"}  # 2.1.1 has no EVSE_OCCUPIED
    assert results["C"].body == {"result": "TIMEOUT"}


async def test_realtime_authorization_at_a_211_emsp(hub, network) -> None:
    receiver, _partner_id, party_pk, _cpo, _loc = await _world(hub, network)
    await add_token(hub.db, party_pk, "APP-211-USER", type="APP_USER", whitelist="NEVER")
    authorizer = hub.component.authorizer
    assert authorizer is not None
    decision = await authorizer.authorize("APP-211-USER", "APP_USER", "LOC1", ["LOC1-E1"])
    assert decision.allowed == "ALLOWED" and decision.source == "realtime"
    assert decision.authorization_reference is None  # 2.1.1 has none
    asked = receiver.of("POST", "tokens/")
    assert [s.path for s in asked] == ["tokens/APP-211-USER/authorize"]
    assert asked[0].query == {"type": ["OTHER"]}  # 2.1.1 TokenType: APP_USER is OTHER
    assert_exact(asked[0].body, "LocationReferences", "2.1.1")
    assert asked[0].body == {"location_id": "LOC1", "evse_uids": ["LOC1-E1"]}
    assert_plain_211(asked[0])
    # a token its 2.1.1 eMSP no longer knows (HTTP 404: 2.1.1 has no 2004) is not allowed, not the cache's call
    await add_token(hub.db, party_pk, "GONE-211", whitelist="ALLOWED_OFFLINE")
    gone = await authorizer.authorize("GONE-211", "RFID", "LOC1", ["LOC1-E1"])
    assert (gone.allowed, gone.source) == ("NOT_ALLOWED", "realtime")


async def test_tokens_pull_from_a_211_emsp(hub, network) -> None:
    receiver, partner_id, party_pk, _cpo, _loc = await _world(hub, network)
    receiver.tokens = [
        {
            "uid": f"PULL-{n}",
            "type": "RFID" if n % 2 else "OTHER",
            "auth_id": f"DE-EMV-C0000{n}",
            "issuer": "2.1.1 eMSP",
            "valid": n != 3,
            "whitelist": "ALLOWED",
            "last_updated": f"2026-03-01T07:0{n}:00Z",
        }
        for n in range(1, 6)
    ]
    puller = hub.component.tokens
    assert puller is not None
    result = await puller.pull(partner_id, full=True)
    assert result.complete and result.stored == 5 and result.pages == 3
    for seen in receiver.of("GET", "tokens"):
        assert_plain_211(seen)
    async with hub.db.session() as s:
        rows = (await s.scalars(select(Token).where(Token.emsp_id == party_pk).order_by(Token.uid))).all()
    assert [(t.uid, t.type, t.country_code, t.party_id, t.valid) for t in rows] == [
        (f"PULL-{n}", "RFID" if n % 2 else "OTHER", "DE", "EMV", n != 3) for n in range(1, 6)
    ]
    assert rows[0].contract_id == "DE-EMV-C00001"  # auth_id
