"""What the hub sends over OCPI 2.2.1 is exactly OCPI (issue #13, item 5).

Every object the hub emits, collected in a seeded world (the demo network, the spec's own location and tariff
examples imported, a registered eMSP simulator), is checked against the field tables of the specification
(:mod:`tests.ocpi._shapes`, ``tests/fixtures/ocpi-221-fields``): the Sender modules' GETs (lists and single
objects), every push the simulator receives, command responses and results, charging-profile responses and
results, credentials and versions, the real-time authorization body and the error envelopes.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from evhub import provisioning as prov
from kernel.models import EVSE, ChargePoint, ChargePointEvse, ChargingSession, TariffVersion
from ocpi import credentials
from ocpi.push.location_push import enqueue_evse_status
from ocpi.push.session_push import enqueue_session_update
from ocpi.push.tariff_push import enqueue_tariff, enqueue_tariff_delete
from tariffs.rating import rate_pending
from tests.conftest import OCPI_EXAMPLES
from tests.ocpi._helpers import FakeGateway, connect, token_pk
from tests.ocpi._shapes import check, check_response, tables
from tests.world.demo_network import seed_demo_network
from tests.world.sessions import seed_ended_session, seed_session
from tests.world.sites import T0, seed_charge_point, seed_cpo, seed_location

FIELDS_EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "ocpi-221-fields" / "examples"


# -- the checker against the specification's own examples ------------------------------------------------

EXAMPLE_KINDS: list[tuple[str, str, bool]] = [
    # (file name prefix, object, partial: a PATCH body or a fragment)
    ("credentials_", "Credentials", False),
    ("cdr_", "CDR", False),
    ("location_energymix", "Location", True),  # {"energy_mix": ...}
    ("location_hours", "Hours", False),
    ("location_put_example_add_evse", "EVSE", False),
    ("location_patch_example_status", "EVSE", True),
    ("location_patch_example_remove_evse", "EVSE", True),
    ("location_patch_example_tariff", "Connector", True),
    ("location_patch", "Location", True),
    ("location_regularhours", "Location", True),
    ("location_", "Location", False),
    ("session_patch", "Session", True),
    ("session_", "Session", False),
    ("tariff", "Tariff", False),
    ("token_patch", "Token", True),
    ("token_", "Token", False),
    ("type_displaytext", "DisplayText", False),
    ("version_details", "VersionDetails", False),
]

RESPONSE_EXAMPLES = {
    "transport_and_format_get_token_example.json": ("Token", False),
    "transport_and_format_get_token_list_example.json": ("Token", True),
    "transport_and_format_version_details_example.json": ("VersionDetails", False),
    "transport_and_format_version_info_example.json": ("Version", True),
}

# The specification's slips (tests/fixtures/ocpi-221-fields/README.md): exactly these problems, no others.
SPEC_SLIPS = {
    "location_put_example_add_evse.json": [
        "EVSE.floor: unknown field (not in OCPI 2.2.1 EVSE)",
        "EVSE.connectors[0].last_updated: required field missing",
        "EVSE.connectors[0].max_amperage: required field missing",
        "EVSE.connectors[0].max_voltage: required field missing",
        "EVSE.connectors[0].power_type: required field missing",
        "EVSE.physical_reference: expected a string, got int",
    ],
    "tariff_put_example.json": ["Tariff.last_updated: required field missing"],
}

EXAMPLE_FILES = sorted([*OCPI_EXAMPLES.glob("*.json"), *FIELDS_EXAMPLES.glob("*.json")])


def _example_problems(path: Path) -> list[str]:
    obj = json.loads(path.read_text(encoding="utf-8"))
    if path.name in RESPONSE_EXAMPLES:
        name, many = RESPONSE_EXAMPLES[path.name]
        return check_response(obj, name, many=many)
    if path.name.startswith("versions_info"):
        return [p for item in obj for p in check(item, "Version")]
    for prefix, name, partial in EXAMPLE_KINDS:
        if path.name.startswith(prefix):
            return check(obj, name, partial=partial)
    raise AssertionError(f"no object kind for example {path.name}")


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_every_official_example_is_exactly_ocpi(path: Path) -> None:
    """Each official 2.2.1 example passes the checker; the spec's known slips give exactly their problems."""
    assert _example_problems(path) == SPEC_SLIPS.get(path.name, [])


def test_the_checker_finds_every_kind_of_problem() -> None:
    """Unknown and missing fields, nulls, wrong types, enum values, lengths, formats, nested objects."""
    example = json.loads((OCPI_EXAMPLES / "location_example.json").read_text(encoding="utf-8"))
    assert check(example, "Location") == []
    bad = json.loads(json.dumps(example))
    bad["internal"] = 1
    del bad["city"]
    bad["name"] = "x" * 256
    bad["publish"] = "yes"
    bad["parking_type"] = "GARAGE"
    bad["postal_code"] = None
    bad["last_updated"] = "2019-06-24 12:39:09"
    bad["evses"][0]["connectors"][0]["max_voltage"] = 230.5
    bad["evses"][0]["capabilities"] = ["FLYING"]
    bad["evses"][0]["uid"] = "é"
    bad["coordinates"] = {"latitude": "51.0", "longitude": "4.000000", "altitude": 3}
    bad["evses"][1]["connectors"] = []
    assert sorted(check(bad, "Location")) == sorted(
        [
            "Location.internal: unknown field (not in OCPI 2.2.1 Location)",
            "Location.city: required field missing",
            "Location.name: 256 characters, the maximum is 255",
            "Location.publish: expected a boolean, got str 'yes'",
            "Location.parking_type: 'GARAGE' is not a ParkingType value of OCPI 2.2.1",
            "Location.postal_code: null (omit an unset field)",
            "Location.last_updated: '2019-06-24 12:39:09' is not an OCPI DateTime (e.g. 2015-06-29T20:39:09Z)",
            "Location.evses[0].connectors[0].max_voltage: expected an integer, got float 230.5",
            "Location.evses[0].capabilities[0]: 'FLYING' is not a Capability value of OCPI 2.2.1",
            "Location.evses[0].uid: a CiString is printable ASCII only: 'é'",
            "Location.coordinates.altitude: unknown field (not in OCPI 2.2.1 GeoLocation)",
            "Location.coordinates.latitude: '51.0' does not match the spec's regex -?[0-9]{1,2}\\.[0-9]{5,7}",
            "Location.evses[1].connectors: the list must not be empty (card. +)",
        ]
    )
    assert check({"excl_vat": 1.23456}, "Price") == ["Price.excl_vat: 1.23456 has more than 4 decimals"]
    assert check({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": None}, "Response") == [
        "Response.data: null (omit an unset field)"
    ]


def test_the_2_1_1_tables_are_there_for_the_2_1_1_objects() -> None:
    """The checker is version-parametric: 2.1.1 has its own tables (a Location has a type, no party), and
    its Hours choice (regular_hours or twentyfourseven) is exactly one of two."""
    v211 = tables("2.1.1")["objects"]
    assert "type" in v211["Location"] and "party_id" not in v211["Location"]
    assert check({"twentyfourseven": True}, "Hours", version="2.1.1") == []
    assert check({}, "Hours", version="2.1.1") == [
        "Hours: exactly one of regular_hours, twentyfourseven must be set"
    ]


# -- the world -------------------------------------------------------------------------------------------


SPEC_LOCATIONS = (
    "location_example_parking_garage_opening_hours.json",
    "location_example_uc2_destination_charger.json",
)
"""Published spec examples with opening hours, images, energy mix, facilities, parking restrictions."""


async def _world(hub: Any, sim: Any) -> dict[str, Any]:
    """The demo network, the spec's location example (BE*BEC) and tariff examples (DE*ALL) imported, the
    simulator registered with a token, an ended session priced into a CDR and an open one."""
    network = await seed_demo_network(hub.db, parties=["NL*AMP"], countries=["NL"], grid_zones=False)
    async with hub.db.session() as s:
        await prov.add_party(s, "BE", "BEC", "CPO", "BeCharged")
        await prov.add_party(s, "DE", "ALL", "CPO", "Alle")
        for path in sorted(OCPI_EXAMPLES.glob("tariff_*.json")):
            tariff = json.loads(path.read_text(encoding="utf-8"))
            if tariff.get("end_date_time", "9999") > "2026":
                await prov.import_tariff(s, tariff)
        for name in ("11", "13"):  # the tariffs the location example names
            await prov.import_tariff(
                s,
                {
                    "country_code": "BE",
                    "party_id": "BEC",
                    "id": name,
                    "currency": "EUR",
                    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]}],
                    "last_updated": "2026-01-01T00:00:00Z",
                },
            )
        await prov.import_location(s, json.loads((OCPI_EXAMPLES / "location_example.json").read_text()))
        await prov.add_party(s, "SE", "EVC", "CPO", "EVC")
        await prov.add_party(s, "NL", "ALF", "CPO", "Alfen")
        for name in SPEC_LOCATIONS:
            await prov.import_location(s, json.loads((FIELDS_EXAMPLES / name).read_text()))
    await connect(hub, sim)
    await sim.push_token(sim.make_token("CARD-1"))
    token = await token_pk(hub.db, "CARD-1")
    ended = await seed_ended_session(
        hub.db, "AMS-01-1", T0, 40, "11.5", uid="SESS-ENDED", charge_minutes=30, token_uid="CARD-1"
    )
    async with hub.db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == "AMS-01-2"))
        assert evse is not None
        loc_pk = evse.location_id
    cp = await seed_charge_point(hub.db, network.parties["NL*AMP"], loc_pk, "CP-OPEN")
    opened = await seed_session(hub.db, network.parties["NL*AMP"], cp, loc_pk, token, "SESS-OPEN")
    return {"network": network, "token": token, "ended": ended, "open": opened, "cp": cp, "loc": loc_pk}


async def _get(sim: Any, url: str, to: tuple[str, str] = ("NL", "AMP"), **params: Any) -> Any:
    async with sim.http() as http:
        response = await http.get(
            url,
            headers={"Authorization": f"Token {sim.hub_token}", **sim.routing(*to)},
            params=params or None,
        )
    return response


def _problems_of_log(sim: Any) -> list[str]:
    """Every request the simulator received from the hub: its headers, and its body checked by what it is."""
    problems: list[str] = []
    for r in sim.log:
        where = f"{r.method} {r.path}"
        problems.extend(f"{where}: {p}" for p in _header_problems(r))
        if r.body is None and r.method in {"DELETE", "GET"}:
            continue
        if "/locations/" in r.path:
            depth = len(r.path.split("/locations/")[1].split("/"))
            name = {3: "Location", 4: "EVSE", 5: "Connector"}[depth]
            found = check(r.body, name, partial=r.method == "PATCH")
        elif "/sessions/" in r.path:
            found = check(r.body, "Session", partial=r.method == "PATCH")
        elif r.path.endswith("/cdrs"):
            found = check(r.body, "CDR")
        elif "/tariffs/" in r.path:
            found = check(r.body, "Tariff")
        elif "/commands/" in r.path:
            found = check(r.body, "CommandResult")
        elif "/chargingprofiles/" in r.path:
            found = []  # checked by the test that knows which result it is
        elif r.path.endswith("/authorize"):
            found = check(r.body, "LocationReferences")
        elif r.path.endswith("/credentials"):
            found = check(r.body, "Credentials")
        else:
            found = [f"unexpected request {where}"]
        problems.extend(f"{where}: {p}" for p in found)
    return problems


ROUTING = {"ocpi-from-country-code", "ocpi-from-party-id", "ocpi-to-country-code", "ocpi-to-party-id"}


def _header_problems(r: Any) -> list[str]:
    """OCPI 2.2.1 transport_and_format: every request has ``Authorization: Token <base64>``, X-Request-ID and
    X-Correlation-ID, the four routing headers (not the credentials module, which is not routed) and, with a
    body, ``Content-Type: application/json``."""
    headers = {k.lower(): v for k, v in r.headers.items()}
    wanted = {"authorization", "x-request-id", "x-correlation-id"}
    if not r.path.endswith("/credentials"):
        wanted |= ROUTING
    problems = [f"header {h} missing" for h in sorted(wanted - set(headers))]
    auth = headers.get("authorization", "")
    if not auth.startswith("Token ") or not re.fullmatch(r"[A-Za-z0-9+/]+=*", auth[6:]):
        problems.append(f"Authorization {auth[:10]!r}... is not 'Token <base64>'")
    if r.body is not None and not headers.get("content-type", "").startswith("application/json"):
        problems.append(f"Content-Type {headers.get('content-type')!r} is not application/json")
    return problems


async def test_the_sender_modules_and_every_push_are_exactly_ocpi(hub, sim):
    """GET lists and single objects of locations (EVSE and connector too), sessions, cdrs, tariffs; the
    pushes of locations (PUT, EVSE PATCH), sessions (PUT, PATCH), the CDR (POST), tariffs (PUT, DELETE)."""
    world = await _world(hub, sim)
    assert await rate_pending(hub.db, hub.hooks.cdr) == 1
    async with hub.db.session() as s:
        for pk in (world["ended"], world["open"]):
            assert await enqueue_session_update(pk, s) == 1
    await hub.component.scan_once()
    await sim.wait_for(lambda: {"AMS-CENTRAAL", "LOC1"} <= set(sim.locations) and len(sim.cdrs) == 1)
    await sim.wait_for(lambda: len(sim.locations) == 4)
    async with hub.db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == "AMS-01-2"))
        assert evse is not None
        assert await enqueue_evse_status(evse, s, "CHARGING") == 1
        cs = await s.get(ChargingSession, world["open"])
        assert cs is not None
        cs.energy_wh += 2500
        cs.last_updated = T0 + timedelta(minutes=20)
        await enqueue_session_update(cs, s)
        tv = TariffVersion(
            cpo_id=world["network"].parties["NL*AMP"],
            tariff_id="DYN",
            version=1,
            currency="EUR",
            source="grid",
            data={
                "id": "DYN",
                "currency": "EUR",
                "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
                "last_updated": "2026-03-01T08:00:00Z",
            },
            last_updated=T0,
        )
        s.add(tv)
        await s.flush()
        assert await enqueue_tariff(tv, s) == 1
    await sim.wait_for(lambda: "DYN" in sim.tariffs)
    async with hub.db.session() as s:
        await enqueue_tariff_delete(world["network"].parties["NL*AMP"], "DYN", s)
    await sim.wait_for(lambda: "DYN" not in sim.tariffs)
    await sim.wait_for(lambda: any(r.method == "PATCH" and "/sessions/" in r.path for r in sim.log))

    problems = _problems_of_log(sim)
    methods = {(r.method, r.path.split("/")[4]) for r in sim.log if r.path.startswith("/ocpi/emsp")}
    assert {
        ("PUT", "locations"),
        ("PATCH", "locations"),
        ("PUT", "sessions"),
        ("PATCH", "sessions"),
        ("POST", "cdrs"),
        ("PUT", "tariffs"),
        ("DELETE", "tariffs"),
    } <= methods, methods

    lists = {"locations": "Location", "sessions": "Session", "cdrs": "CDR", "tariffs": "Tariff"}
    for to in (("NL", "AMP"), ("BE", "BEC"), ("DE", "ALL"), ("SE", "EVC"), ("NL", "ALF")):
        for module, name in lists.items():
            response = await _get(sim, sim._hub_url(module), to, limit=100)
            assert response.status_code == 200, response.text
            problems.extend(
                f"GET {module} {to}: {p}" for p in check_response(response.json(), name, many=True)
            )
    loc_url = sim._hub_url("locations")
    for suffix, name, to in (
        ("/LOC1", "Location", ("BE", "BEC")),
        ("/LOC1/3256", "EVSE", ("BE", "BEC")),
        ("/LOC1/3256/1", "Connector", ("BE", "BEC")),
        ("/AMS-CENTRAAL", "Location", ("NL", "AMP")),
        ("/AMS-CENTRAAL/AMS-01-1/1", "Connector", ("NL", "AMP")),
    ):
        response = await _get(sim, loc_url + suffix, to)
        assert response.status_code == 200, (suffix, response.text)
        problems.extend(f"GET locations{suffix}: {p}" for p in check_response(response.json(), name))
    for module in ("sessions", "cdrs", "tariffs"):
        assert (await _get(sim, sim._hub_url(module))).json()["data"], f"GET {module} is empty"
    assert problems == [], "\n".join(problems)


# -- commands, charging profiles, credentials, versions, real-time authorization, errors --------------------


async def _command_world(hub: Any, sim: Any) -> dict[str, Any]:
    """A CPO (NL*CPO) with LOC1 (EVSEs LOC1-E1, LOC1-E2) served by one charger, the simulator registered with
    the token CARD-1 and an open session SESS-1 of it."""
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    cp = await seed_charge_point(hub.db, cpo, loc, "CP-CMD")
    async with hub.db.session() as s:
        evses = (await s.scalars(select(EVSE).where(EVSE.location_id == loc).order_by(EVSE.id))).all()
        for n, evse in enumerate(evses, start=1):
            s.add(ChargePointEvse(charge_point_id=cp, ocpp_evse_id=n, evse_pk=evse.id))
    await connect(hub, sim)
    await sim.push_token(sim.make_token("CARD-1"))
    token = await token_pk(hub.db, "CARD-1")
    await seed_session(hub.db, cpo, cp, loc, token, "SESS-1", tx="42")
    return {"cpo": cpo, "loc": loc, "cp": cp}


async def _post(sim: Any, url: str, body: Any) -> Any:
    async with sim.http() as http:
        return await http.post(
            url, json=body, headers={"Authorization": f"Token {sim.hub_token}", **sim.routing()}
        )


def _command_bodies(sim: Any) -> dict[str, dict[str, Any]]:
    token = sim.tokens[("CARD-1", "RFID")]
    expiry = "2026-12-01T10:00:00Z"
    return {
        "START_SESSION": {"token": token, "location_id": "LOC1", "evse_uid": "LOC1-E1", "connector_id": "1"},
        "STOP_SESSION": {"session_id": "SESS-1"},
        "UNLOCK_CONNECTOR": {"location_id": "LOC1", "evse_uid": "LOC1-E1", "connector_id": "1"},
        "RESERVE_NOW": {
            "token": token,
            "expiry_date": expiry,
            "reservation_id": "R-1",
            "location_id": "LOC1",
            "evse_uid": "LOC1-E2",
        },
        "CANCEL_RESERVATION": {"reservation_id": "R-1"},
    }


class OfflineCharger:
    """A gateway whose charger is connected nowhere."""

    async def send(self, identity: str, action: str, payload: Any, timeout: Any = None) -> Any:
        from cpo_gateway import ChargerOffline

        raise ChargerOffline(identity)


async def test_command_responses_and_results_are_exactly_ocpi(hub, sim):
    """All five commands, accepted and refused by the charger, a charger offline (FAILED with a message) and
    one that never answers (TIMEOUT): each CommandResponse (the POST's data) and each CommandResult (POSTed to
    the response_url) is exactly OCPI; so are the responses of a command without a gateway (NOT_SUPPORTED)
    and of an unknown session (UNKNOWN_SESSION)."""
    await _command_world(hub, sim)
    url = sim._hub_url("commands")
    problems: list[str] = []

    async def send(command: str, body: dict[str, Any]) -> dict[str, Any]:
        ref = f"{command}-{uuid.uuid4().hex}"
        full = {"response_url": f"{sim.base_url}/emsp/2.2.1/commands/{command}/{ref}", **body}
        response = await _post(sim, f"{url}/{command}", full)
        assert response.status_code == 200, response.text
        problems.extend(
            f"{command} response: {p}" for p in check_response(response.json(), "CommandResponse")
        )
        return {"ref": ref, **response.json()["data"]}

    answers = []
    answers.append(await send("START_SESSION", _command_bodies(sim)["START_SESSION"]))  # no gateway
    for answer in ("ACCEPTED", "REJECTED"):
        hub.services.gateway = FakeGateway(answer=answer)
        for command, body in _command_bodies(sim).items():
            answers.append(await send(command, body))
    answers.append(await send("STOP_SESSION", {"session_id": "NOPE"}))
    hub.services.gateway = OfflineCharger()
    answers.append(await send("UNLOCK_CONNECTOR", _command_bodies(sim)["UNLOCK_CONNECTOR"]))
    hub.services.gateway = FakeGateway(delay=30)  # never answers within the command timeout
    answers.append(await send("UNLOCK_CONNECTOR", _command_bodies(sim)["UNLOCK_CONNECTOR"]))
    assert {a["result"] for a in answers} == {"ACCEPTED", "NOT_SUPPORTED", "UNKNOWN_SESSION"}, answers
    refs = {a["ref"] for a in answers if a["result"] == "ACCEPTED"}
    await sim.wait_for(lambda: refs <= set(sim.command_results))
    results = {r["result"] for r in sim.command_results.values()}
    assert {"ACCEPTED", "REJECTED", "FAILED", "TIMEOUT"} <= results, results
    assert any(r.get("message") for r in sim.command_results.values())  # FAILED says why (DisplayText)
    problems.extend(_problems_of_log(sim))
    assert problems == [], "\n".join(problems)


async def test_charging_profile_responses_and_results_are_exactly_ocpi(hub, sim):
    """PUT, DELETE and GET of a session's charging profile: the ChargingProfileResponse of each and the
    ChargingProfileResult, ClearProfileResult and ActiveChargingProfileResult POSTed back are exactly OCPI."""
    await _command_world(hub, sim)
    answers = {
        "SetChargingProfile": {"status": "Accepted"},
        "ClearChargingProfile": {"status": "Accepted"},
        "GetCompositeSchedule": {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": "2026-03-01T08:00:00Z",
            "chargingSchedule": {
                "duration": 3600,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.5, "numberPhases": 3}],
            },
        },
    }

    class Charger:
        async def send(self, identity: str, action: str, payload: Any, timeout: Any = None) -> Any:
            return answers[action]

    hub.services.gateway = Charger()
    url = f"{sim._hub_url('chargingprofiles')}/SESS-1"
    auth = {"Authorization": f"Token {sim.hub_token}", **sim.routing()}
    profile = {
        "start_date_time": "2026-03-01T08:00:00Z",
        "charging_rate_unit": "W",
        "min_charging_rate": 1000.0,
        "charging_profile_period": [{"start_period": 0, "limit": 11000}],
    }
    expected: dict[str, str] = {}
    problems: list[str] = []
    async with sim.http() as http:
        for method, kind in (("PUT", "ChargingProfileResult"), ("DELETE", "ClearProfileResult"),
                             ("GET", "ActiveChargingProfileResult")):  # fmt: skip
            ref, rurl = sim.profile_response_url()
            expected[ref] = kind
            if method == "PUT":
                r = await http.put(
                    url, json={"charging_profile": profile, "response_url": rurl}, headers=auth
                )
            else:
                params = {"response_url": rurl, **({"duration": 3600} if method == "GET" else {})}
                r = await http.request(method, url, params=params, headers=auth)
            assert r.status_code == 200, r.text
            problems.extend(
                f"{method} response: {p}" for p in check_response(r.json(), "ChargingProfileResponse")
            )
        await sim.wait_for(lambda: set(expected) <= set(sim.profile_results))
    for ref, kind in expected.items():
        problems.extend(f"{kind}: {p}" for p in check(sim.profile_results[ref], kind))
    assert sim.profile_results[next(iter(expected))]["result"] == "ACCEPTED"
    assert "profile" in sim.profile_results[list(expected)[2]]
    assert problems == [], "\n".join(problems)


async def test_versions_credentials_and_the_authorization_request_are_exactly_ocpi(hub, sim, sim2):
    """The hub's versions list and version details, its credentials (the registration's answer, GET, a
    rotation's answer, the bodies it POSTs and PUTs when it registers and renews itself) and the real-time
    authorization request body (LocationReferences)."""
    await seed_cpo(hub.db)
    cpo = await seed_cpo(hub.db, "NL", "CP2", "Second CPO")
    await seed_location(hub.db, cpo, "LOC2")
    inv = await credentials.invite(
        hub.db, hub.platform, sim.name, roles=[(sim.country_code, sim.party_id, "EMSP")]
    )
    problems = [
        f"registration: {p}" for p in check(await sim.register(inv.versions_url, inv.token_a), "Credentials")
    ]
    auth = {"Authorization": f"Token {sim.hub_token}"}
    async with sim.http() as http:
        versions = (await http.get(hub.versions_url, headers=auth)).json()
        problems.extend(f"versions: {p}" for p in check_response(versions, "Version", many=True))
        for version in versions["data"]:
            details = (await http.get(version["url"], headers=auth)).json()
            name = "VersionDetails"
            problems.extend(
                f"details {version['version']}: {p}"
                for p in check_response(details, name, version=version["version"])
            )
        got = (await http.get(sim._hub_url("credentials"), headers=auth)).json()
        problems.extend(f"GET credentials: {p}" for p in check_response(got, "Credentials"))
    problems.extend(f"rotation: {p}" for p in check(await sim.rotate(), "Credentials"))
    await credentials.rotate(hub.db, hub.platform, inv.partner_id)  # the hub renews: PUT to the partner
    await credentials.register(hub.db, hub.platform, sim2.versions_url, sim2.token_a)  # the hub initiates
    sent = [r for r in [*sim.log, *sim2.log] if r.path.endswith("/credentials")]
    assert {r.method for r in sent} == {"PUT", "POST"}, [(r.method, r.path) for r in sent]
    problems.extend(_problems_of_log(sim2))
    await sim.push_token(sim.make_token("RT-1", whitelist="NEVER"))
    decision = await hub.component.authorizer.authorize("RT-1", "RFID", "LOC2", ["LOC2-E1"])
    assert decision.allowed == "ALLOWED"
    assert any(r.path.endswith("/authorize") for r in sim.log)
    problems.extend(_problems_of_log(sim))
    assert problems == [], "\n".join(problems)


async def test_error_envelopes_are_exactly_ocpi(hub, sim):
    """Refusals in OCPI's own terms: unauthorized (2000 family over 401), an unknown object (2003), bad routing
    headers, an unparsable body and a bad parameter (2001), an unknown command, a method the module does not
    have: each answer is an OCPI response envelope with a 4-digit status code and nothing else."""
    await _command_world(hub, sim)
    loc_url, cmd_url = sim._hub_url("locations"), sim._hub_url("commands")
    auth = {"Authorization": f"Token {sim.hub_token}"}
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", loc_url, {"headers": sim.routing()}),
        ("GET", f"{loc_url}/NOPE", {"headers": {**auth, **sim.routing()}}),
        ("GET", f"{loc_url}/LOC1/NOPE", {"headers": {**auth, **sim.routing()}}),
        ("GET", loc_url, {"headers": {**auth, **sim.routing(), "OCPI-from-party-id": "XXX"}}),
        ("GET", loc_url, {"headers": auth}),
        ("GET", loc_url, {"headers": {**auth, **sim.routing()}, "params": {"date_from": "yesterday"}}),
        ("POST", f"{cmd_url}/START_SESSION", {"headers": {**auth, **sim.routing()}, "content": b"{"}),
        ("POST", f"{cmd_url}/FLY_TO_MOON", {"headers": {**auth, **sim.routing()}, "json": {}}),
        ("POST", f"{cmd_url}/START_SESSION", {"headers": {**auth, **sim.routing()}, "json": {"x": 1}}),
        ("DELETE", f"{loc_url}/LOC1", {"headers": {**auth, **sim.routing()}}),
        ("GET", f"{sim._hub_url('sessions')}/NL/CPO/NOPE", {"headers": {**auth, **sim.routing()}}),
    ]
    problems: list[str] = []
    async with sim.http() as http:
        for method, url, kwargs in requests:
            response = await http.request(method, url, **kwargs)
            where = f"{method} {url.split('/ocpi/')[-1]} -> {response.status_code}"
            assert response.status_code >= 400, where
            try:
                body = response.json()
            except ValueError:
                problems.append(f"{where}: not JSON: {response.text[:80]!r}")
                continue
            problems.extend(f"{where}: {p}" for p in check_response(body))
            if isinstance(body, dict) and body.get("status_code", 1000) < 2000:
                problems.append(f"{where}: a refusal with status_code {body['status_code']}")
    assert problems == [], "\n".join(problems)


# -- OCPI commands to chargers over real websockets: exactly OCPP, unique ids -----------------------------

CHARGER_ANSWERS = {
    "RemoteStartTransaction": {"status": "Accepted"},
    "RequestStartTransaction": {"status": "Accepted"},
    "RemoteStopTransaction": {"status": "Accepted"},
    "RequestStopTransaction": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "ReserveNow": {"status": "Accepted"},
    "CancelReservation": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
}

_SCHEDULE = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}
COMPOSITE = {
    "CP16": {"status": "Accepted", "connectorId": 1, "scheduleStart": "2026-12-01T10:00:00Z",
             "chargingSchedule": {"duration": 600, **_SCHEDULE}},
    "CP201": {"status": "Accepted", "schedule": {"evseId": 1, "duration": 600,
                                                 "scheduleStart": "2026-12-01T10:00:00Z", **_SCHEDULE}},
}  # fmt: skip


async def test_ocpi_commands_reach_real_chargers_as_exact_ocpp_with_unique_ids(hub, sim, sim2):
    """Two eMSPs command a 1.6 and a 2.0.1 charger (real websockets, the gateway of the hub): every CALL the
    chargers receive is valid against the official request schema, message ids are unique per connection,
    the two eMSPs' RESERVE_NOW with the same reservation_ids reach the chargers with four different ids
    (OCPI 2.2.1: the id sent to the Charge Point is unique and not used by another eMSP), each 2.0.1 remote
    start has its own remoteStartId and the profiles of four sessions have different chargingProfileIds (set,
    read and cleared on both versions)."""
    from cpo_gateway.server import Gateway
    from tests.gateway._ocpp_schemas import frame_problems
    from tests.gateway.conftest import PASSWORD, basic, gateway_settings, open_client

    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    async with hub.db.session() as s:
        for identity, evse_uid, version in (("CP16", "LOC1-E1", "1.6"), ("CP201", "LOC1-E2", "2.0.1")):
            await prov.add_charger(
                s, identity, password=PASSWORD, location="LOC1", evse_uids=[evse_uid], ocpp_version=version
            )
        chargers = {
            c.identity: c.id
            for c in (await s.scalars(select(ChargePoint).where(ChargePoint.cpo_id == cpo))).all()
        }
    # the chargers answer each CALL in turn: on a loaded box the last of a charger's queue can wait longer than
    # the fixture's 2 s, and a TIMEOUT result would end the wait before the charger had the frame
    assert hub.component.commands is not None
    hub.component.commands.timeout = 30
    gw = Gateway(gateway_settings(hub.db.url, ocpp_command_timeout=15), hub.db, "node-a")
    await gw.start("127.0.0.1", 0)
    clients = {}
    try:
        for identity, protocol in (("CP16", "ocpp1.6"), ("CP201", "ocpp2.0.1")):
            client = await open_client(gw, identity, protocol, headers=basic(identity))
            client.auto_reply.update(CHARGER_ANSWERS, GetCompositeSchedule=COMPOSITE[identity])
            await client.ok("Heartbeat", {})
            clients[identity] = client
        hub.services.gateway = gw
        for simulator in (sim, sim2):
            await connect(hub, simulator)
            await simulator.push_token(simulator.make_token("CARD-" + simulator.party_id))
        tokens = {}
        for simulator in (sim, sim2):
            tokens[simulator.party_id] = await token_pk(hub.db, "CARD-" + simulator.party_id)
        await seed_session(hub.db, cpo, chargers["CP16"], loc, tokens["EMS"], "SESS-16A", tx="16")
        await seed_session(hub.db, cpo, chargers["CP16"], loc, tokens["OTH"], "SESS-16B", tx="17")
        await seed_session(hub.db, cpo, chargers["CP201"], loc, tokens["EMS"], "SESS-201A", tx="tx-a")
        await seed_session(hub.db, cpo, chargers["CP201"], loc, tokens["OTH"], "SESS-201B", tx="tx-b")
        refs = []
        for simulator in (sim, sim2):
            token = simulator.tokens[("CARD-" + simulator.party_id, "RFID")]
            for reservation_id, evse_uid in (("1", "LOC1-E1"), ("2", "LOC1-E2")):
                body = {"token": token, "expiry_date": "2026-12-01T10:00:00Z", "reservation_id": reservation_id,
                        "location_id": "LOC1", "evse_uid": evse_uid}  # fmt: skip
                refs.append((simulator, (await simulator.command("RESERVE_NOW", body))[0]))
                body = {"token": token, "location_id": "LOC1", "evse_uid": evse_uid, "connector_id": "1"}
                refs.append((simulator, (await simulator.command("START_SESSION", body))[0]))
                body = {"location_id": "LOC1", "evse_uid": evse_uid, "connector_id": "1"}
                refs.append((simulator, (await simulator.command("UNLOCK_CONNECTOR", body))[0]))
            for reservation_id in ("1", "2"):
                body = {"reservation_id": reservation_id}
                refs.append((simulator, (await simulator.command("CANCEL_RESERVATION", body))[0]))
        sessions_of = {"EMS": ("SESS-16A", "SESS-201A"), "OTH": ("SESS-16B", "SESS-201B")}
        profile = {
            "start_date_time": "2026-12-01T10:00:00",
            "charging_rate_unit": "A",
            "charging_profile_period": [
                {"start_period": 0, "limit": 16},
                {"start_period": 600, "limit": 8.5},
            ],
        }
        for simulator in (sim, sim2):
            for session_uid in sessions_of[simulator.party_id]:
                refs.append((simulator, (await simulator.stop_session(session_uid))[0]))
                url = f"{simulator._hub_url('chargingprofiles')}/{session_uid}"
                headers = {"Authorization": f"Token {simulator.hub_token}", **simulator.routing()}
                for method in ("PUT", "GET", "DELETE"):
                    ref, rurl = simulator.profile_response_url()
                    async with simulator.http() as http:
                        if method == "PUT":
                            body = {"charging_profile": profile, "response_url": rurl}
                            r = await http.put(url, json=body, headers=headers)
                        else:
                            params = {"response_url": rurl, "duration": 600}
                            r = await http.request(method, url, params=params, headers=headers)
                    assert r.json()["data"]["result"] == "ACCEPTED", r.text
                    await simulator.wait_for(lambda s=simulator, ref=ref: ref in s.profile_results)
                    assert simulator.profile_results[ref]["result"] == "ACCEPTED", simulator.profile_results[
                        ref
                    ]
        for simulator, ref in refs:
            await simulator.wait_for(lambda s=simulator, ref=ref: ref in s.command_results)
            assert simulator.command_results[ref]["result"] != "TIMEOUT", simulator.command_results[ref]
        frames = {identity: _queued(client) for identity, client in clients.items()}
    finally:
        for client in clients.values():
            await client.close()
        await gw.stop()
    problems = [
        f"{identity}: {p}"
        for identity, version in (("CP16", "1.6"), ("CP201", "2.0.1"))
        for frame in frames[identity]
        for p in frame_problems(version, frame)
    ]
    assert problems == [], "\n".join(problems)
    for identity, sent in frames.items():
        ids = [f[1] for f in sent]
        assert len(ids) == len(set(ids)), (identity, ids)
    reserve_16 = [f[3]["reservationId"] for f in frames["CP16"] if f[2] == "ReserveNow"]
    reserve_201 = [f[3]["id"] for f in frames["CP201"] if f[2] == "ReserveNow"]
    assert len(reserve_16) == 2 and len(set(reserve_16)) == 2, reserve_16
    assert len(reserve_201) == 2 and len(set(reserve_16 + reserve_201)) == 4, reserve_201
    starts = [f[3]["remoteStartId"] for f in frames["CP201"] if f[2] == "RequestStartTransaction"]
    assert len(starts) == 2 and len(set(starts)) == 2, starts
    profiles = [
        f[3]["csChargingProfiles"]["chargingProfileId"]
        for f in frames["CP16"]
        if f[2] == "SetChargingProfile"
    ]
    profiles += [f[3]["chargingProfile"]["id"] for f in frames["CP201"] if f[2] == "SetChargingProfile"]
    assert len(profiles) == 4 and len(set(profiles)) == 4, profiles
    actions = {f[2] for sent in frames.values() for f in sent}
    assert {"GetCompositeSchedule", "ClearChargingProfile", "RequestStopTransaction"} <= actions, actions
    assert {sim.command_results[r]["result"] for s, r in refs if s is sim} <= {
        "ACCEPTED",
        "CANCELED_RESERVATION",
    }


def _queued(client: Any) -> list[list[Any]]:
    """The CALLs a test charger has received (each queued before it was answered)."""
    frames = []
    while not client.incoming.empty():
        frames.append(client.incoming.get_nowait())
    return [f for f in frames if f[0] == 2]


async def test_the_receiver_gets_are_exactly_ocpi(hub, sim):
    """What the hub's Receiver interfaces give back: a token the eMSP pushed (GET tokens) and the ClientInfo a
    hub pushed (GET hubclientinfo), each pushed with a fractional-second last_updated. The ClientInfo came
    back with ``last_updated`` in microseconds (27 characters, OCPI's DateTime is string(25)) and with a
    field OCPI does not have that was pushed with it."""
    await seed_cpo(hub.db)
    await connect(hub, sim)
    pushed = await sim.push_token({**sim.make_token("CARD-9"), "last_updated": "2026-03-01T08:00:00.5Z"})
    assert pushed.json()["status_code"] == 1000, pushed.text
    info = {"party_id": "OTH", "country_code": "FR", "role": "EMSP", "status": "CONNECTED",
            "last_updated": "2026-03-01T08:00:00.123Z", "x_note": "not OCPI"}  # fmt: skip
    auth = {"Authorization": f"Token {sim.hub_token}", **sim.routing()}
    async with sim.http() as http:
        r = await http.put(f"{sim._hub_url('hubclientinfo')}/FR/OTH", json=info, headers=auth)
        assert r.json()["status_code"] == 1000, r.text
        got_info = (await http.get(f"{sim._hub_url('hubclientinfo')}/FR/OTH", headers=auth)).json()
        got_token = (await http.get(f"{sim._hub_url('tokens')}/DE/EMS/CARD-9", headers=auth)).json()
    problems = [f"ClientInfo: {p}" for p in check_response(got_info, "ClientInfo")]
    problems += [f"Token: {p}" for p in check_response(got_token, "Token")]
    assert problems == [], "\n".join(problems)


EXTRA_LOCATION: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "XTR",
    "id": "XTR-1",
    "publish": True,
    "name": "Extra fields",
    "address": "Kade 1",
    "city": "Utrecht",
    "postal_code": "3511",
    "country": "NLD",
    "coordinates": {"latitude": "52.08940", "longitude": "5.11010", "x_precision_m": 3},
    "operator": {"name": "Extra BV", "x_vat_number": "NL0001"},
    "x_internal_note": "gate code 1234",
    "opening_times": {
        "twentyfourseven": True,
        "exceptional_closings": [
            {"period_begin": "2026-12-25T03:00:00+01:00", "period_end": "2026-12-25T05:00:00Z"}
        ],
    },
    "evses": [
        {
            "uid": "XTR-1-1",
            "evse_id": "NL*XTR*E1",
            "status": "AVAILABLE",
            "floor": -1,
            "status_schedule": [{"period_begin": "2026-12-24T18:00:00.123456Z", "status": "BLOCKED"}],
            "connectors": [
                {
                    "id": "1",
                    "standard": "IEC_62196_T2",
                    "format": "SOCKET",
                    "power_type": "AC_3_PHASE",
                    "max_voltage": 230,
                    "max_amperage": 32,
                    "tariff_ids": ["XTR-T"],
                    "x_pin_layout": "type2",
                    "last_updated": "2026-01-01T00:00:00Z",
                }
            ],
            "last_updated": "2026-01-01T00:00:00Z",
        }
    ],
    "time_zone": "Europe/Amsterdam",
    "last_updated": "2026-01-01T00:00:00Z",
}
EXTRA_TARIFF: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "XTR",
    "id": "XTR-T",
    "currency": "EUR",
    "x_source": "erp",
    "tariff_alt_text": [{"language": "en", "text": "0.30/kWh", "x_style": "bold"}],
    "elements": [
        {
            "x_note": "day",
            "price_components": [
                {"type": "ENERGY", "price": 0.3, "vat": 21.0, "step_size": 1, "x_cc": "4711"}
            ],
            "restrictions": {"max_power": 50.0, "x_comment": "slow chargers"},
        }
    ],
    "last_updated": "2026-01-01T00:00:00Z",
}


async def test_fields_outside_the_spec_in_imported_data_never_leave_the_hub(hub, sim):
    """Issue 13 (item 5, no unknown fields): a location and a tariff imported with fields OCPI does not have,
    at every level (an operator's note, an EVSE ``floor``, a connector's pin layout, a BusinessDetails VAT
    number, a tariff's source, a price component's cost center...), are stored as given, but no Location, EVSE,
    Connector, Tariff or CDR the hub serves or pushes carries them: each object has only its spec fields. A
    nested DateTime imported with an offset (``+01:00``) or in microseconds, not an OCPI DateTime (UTC,
    string(25)), is sent as the same instant in OCPI's form."""
    async with hub.db.session() as s:
        await prov.add_party(s, "NL", "XTR", "CPO", "Extra BV")
        await prov.import_tariff(s, EXTRA_TARIFF)
        await prov.import_location(s, EXTRA_LOCATION)
    await connect(hub, sim)
    await sim.push_token(sim.make_token("CARD-X"))
    await seed_ended_session(hub.db, "XTR-1-1", T0, 30, "5", uid="SESS-X", token_uid="CARD-X")
    assert await rate_pending(hub.db, hub.hooks.cdr) == 1
    await hub.component.scan_once()
    await sim.wait_for(lambda: "XTR-1" in sim.locations and "XTR-T" in sim.tariffs and len(sim.cdrs) == 1)
    problems = _problems_of_log(sim)
    to = ("NL", "XTR")
    for module, name in (("locations", "Location"), ("tariffs", "Tariff"), ("cdrs", "CDR")):
        response = await _get(sim, sim._hub_url(module), to)
        problems.extend(f"GET {module}: {p}" for p in check_response(response.json(), name, many=True))
    for suffix, name in (
        ("/XTR-1", "Location"),
        ("/XTR-1/XTR-1-1", "EVSE"),
        ("/XTR-1/XTR-1-1/1", "Connector"),
    ):
        response = await _get(sim, sim._hub_url("locations") + suffix, to)
        problems.extend(f"GET locations{suffix}: {p}" for p in check_response(response.json(), name))
    assert problems == [], "\n".join(problems)
    assert sim.locations["XTR-1"]["operator"] == {"name": "Extra BV"}
    closing = sim.locations["XTR-1"]["opening_times"]["exceptional_closings"][0]
    assert closing == {"period_begin": "2026-12-25T02:00:00Z", "period_end": "2026-12-25T05:00:00Z"}
    assert (
        sim.locations["XTR-1"]["evses"][0]["status_schedule"][0]["period_begin"] == "2026-12-24T18:00:00.123Z"
    )
    assert sim.tariffs["XTR-T"]["elements"][0]["restrictions"]["max_power"] == 50.0  # the spec's fields stay


async def test_an_active_charging_profile_has_an_ocpi_start(hub, sim):
    """A charger's GetCompositeSchedule answer with ``scheduleStart`` in another offset, and an ``Accepted``
    one without a schedule (both valid OCPP 1.6): the ActiveChargingProfileResult is exactly OCPI
    (``start_date_time`` is a required UTC DateTime)."""
    await _command_world(hub, sim)
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}
    answers = iter(
        [
            {
                "status": "Accepted",
                "scheduleStart": "2026-03-01T09:00:00+01:00",
                "chargingSchedule": schedule,
            },
            {"status": "Accepted"},
        ]
    )

    class Charger:
        async def send(self, identity: str, action: str, payload: Any, timeout: Any = None) -> Any:
            return next(answers)

    hub.services.gateway = Charger()
    url = f"{sim._hub_url('chargingprofiles')}/SESS-1"
    auth = {"Authorization": f"Token {sim.hub_token}", **sim.routing()}
    refs = []
    async with sim.http() as http:
        for _ in range(2):
            ref, rurl = sim.profile_response_url()
            r = await http.get(url, params={"response_url": rurl, "duration": 600}, headers=auth)
            assert r.json()["data"]["result"] == "ACCEPTED", r.text
            await sim.wait_for(lambda ref=ref: ref in sim.profile_results)
            refs.append(ref)
    problems = [p for ref in refs for p in check(sim.profile_results[ref], "ActiveChargingProfileResult")]
    assert problems == [], "\n".join(problems)


async def test_cancel_reservation_goes_to_the_reservation_s_charger_only(hub, sim):
    """LOC1's EVSEs on two chargers, a reservation on the second: CANCEL_RESERVATION sends one
    CancelReservation, to the charger that holds the reservation (any other charger accepting an id it does not
    have would end the command CANCELED_RESERVATION while the reservation stays)."""
    world = await _command_world(hub, sim)
    other = await seed_charge_point(hub.db, world["cpo"], world["loc"], "CP-OTHER")
    async with hub.db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == "LOC1-E2"))
        assert evse is not None
        row = await s.scalar(select(ChargePointEvse).where(ChargePointEvse.evse_pk == evse.id))
        assert row is not None
        row.charge_point_id, row.ocpp_evse_id = other, 1
    sent: list[tuple[str, str]] = []

    class Chargers:
        async def send(self, identity: str, action: str, payload: Any, timeout: Any = None) -> Any:
            sent.append((identity, action))
            return {"status": "Accepted"}

    hub.services.gateway = Chargers()
    bodies = _command_bodies(sim)
    for command in ("RESERVE_NOW", "CANCEL_RESERVATION"):
        ref, response = await sim.command(command, bodies[command])
        assert response["result"] == "ACCEPTED"
        await sim.wait_for(lambda ref=ref: ref in sim.command_results)
    assert sent == [("CP-OTHER", "ReserveNow"), ("CP-OTHER", "CancelReservation")], sent


NOT_OCPI_VALUES: list[tuple[str, Any]] = [
    ("standard", lambda loc: loc["evses"][0]["connectors"][0].update(standard="TYPE2")),
    ("capabilities", lambda loc: loc["evses"][0].update(capabilities=["FLYING"])),
    ("facilities", lambda loc: loc.update(facilities=["hotel"])),
    ("parking_type", lambda loc: loc.update(parking_type="garage")),
    ("directions", lambda loc: loc.update(directions=[{"language": "english", "text": "left"}])),
    ("operator", lambda loc: loc.update(operator={"name": "n" * 101})),
]


@pytest.mark.parametrize(("field", "spoil"), NOT_OCPI_VALUES, ids=[f for f, _ in NOT_OCPI_VALUES])
async def test_an_imported_location_with_values_ocpi_does_not_have_is_refused(hub, field, spoil):
    """A connector standard, a capability, a facility, a parking type OCPI does not list, a language code of
    seven letters, an operator name over 100 characters: the import says which field and stores nothing
    (else the hub would emit it)."""
    loc = json.loads(json.dumps(EXTRA_LOCATION))
    spoil(loc)
    async with hub.db.session() as s:
        await prov.add_party(s, "NL", "XTR", "CPO", "Extra BV")
        await prov.import_tariff(s, EXTRA_TARIFF)
        with pytest.raises(prov.ProvisioningError, match=field):
            await prov.import_location(s, loc)
