"""The OCPI 2.1.1 edge translations (:mod:`ocpi.v211.objects`, issue 13 item 4) against the specification.

* The official 2.1.1 examples (tests/fixtures/ocpi-211-examples) pass the shape checker on the 2.1.1 field
  tables (tests/ocpi/_shapes.py) but for the slips the README lists, so the checker knows the tables.
* What the hub receives in 2.1.1 (Token, PATCH of a Token, the four commands, AuthorizationInfo, Credentials)
  becomes a 2.2.1 object the hub's own validators accept.
* What the hub sends: the official 2.2.1 examples (tests/fixtures/ocpi-examples and
  tests/fixtures/ocpi-221-fields/examples) translated are exactly 2.1.1 objects, and have the field layout of the
  official 2.1.1 example of the same thing.
* Money: a CDR's 2.1.1 ``total_cost`` is its 2.2.1 ``excl_vat``, the same Decimal; energy and times unchanged.
* Partial objects (PATCH bodies) translate key by key.
* What the hub renders in a seeded world (a priced session of the demo network) translates the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kernel import jsonutil
from kernel.db.engine import Database
from kernel.domain.tokens import OcpiToken
from kernel.models import Cdr, ChargingSession, Party, TariffVersion
from ocpi.render_objects import cdr_object, load_location, location_object, session_object, tariff_object
from ocpi.schemas.commands import (
    CommandResponse,
    CommandResult,
    ReserveNow,
    StartSession,
    StopSession,
    UnlockConnector,
)
from ocpi.schemas.credentials import Credentials
from ocpi.schemas.tokens import TokenPatch
from ocpi.v211 import objects
from tariffs.rating import rate_pending
from tests.ocpi import _shapes
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EX211 = FIXTURES / "ocpi-211-examples"
EX221 = FIXTURES / "ocpi-examples"
EX221_MORE = FIXTURES / "ocpi-221-fields" / "examples"


def ex211(name: str) -> Any:
    return jsonutil.loads((EX211 / f"{name}.json").read_text(encoding="utf-8"))


def ex221(name: str) -> Any:
    path = EX221 / f"{name}.json"
    if not path.exists():
        path = EX221_MORE / f"{name}.json"
    return jsonutil.loads(path.read_text(encoding="utf-8"))


def check(obj: Any, name: str, *, partial: bool = False) -> list[str]:
    """Every way ``obj`` is not exactly the OCPI 2.1.1 object ``name`` (:func:`tests.ocpi._shapes.check`)."""
    return _shapes.check(obj, name, "2.1.1", partial=partial)


def paths(obj: Any, prefix: str = "") -> set[str]:
    """Every field path of ``obj`` (list items merged: ``evses[].uid``)."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            found.add(prefix + key)
            found |= paths(value, prefix + key + ".")
    elif isinstance(obj, list):
        for item in obj:
            found |= paths(item, prefix.rstrip(".") + "[].")
    return found


# --- the checker knows the 2.1.1 tables: the official examples pass, but for their known slips ---

COMPLETE_211 = {
    "credentials_1_credentials": ("Credentials", []),
    "cdrs_1_cdr": (
        "CDR",
        ["CDR.tariffs[0].elements[0].price_components[0].price: expected a JSON number, got str '2.00'"],
    ),
    "locations_4_put_evse": (
        "EVSE",
        [
            "EVSE.physical_reference: expected a string, got int",
            "EVSE.floor_level: expected a string, got int",
            "EVSE.last_updated: required field missing",
            "EVSE.connectors[0].power_type: required field missing",
            "EVSE.connectors[0].voltage: required field missing",
            "EVSE.connectors[0].amperage: required field missing",
            "EVSE.connectors[0].last_updated: required field missing",
        ],
    ),
    "locations_6_location": ("Location", []),
    "locations_7_energy_mix_simple": ("EnergyMix", []),
    "locations_8_energy_mix_supplier": ("EnergyMix", []),
    "locations_9_energy_mix_complete": ("EnergyMix", []),
    "locations_10_opening_times": (
        "Hours",
        ["Hours: exactly one of regular_hours, twentyfourseven must be set"],
    ),
    "sessions_2_pending": ("Session", []),
    "sessions_3_completed": ("Session", []),
    "tariffs_1_put_2_euro_per_hour": ("Tariff", ["Tariff.last_updated: required field missing"]),
    "tariffs_3_2_euro_per_hour": ("Tariff", []),
    "tariffs_4_alt_text": ("Tariff", []),
    "tariffs_5_alt_url": ("Tariff", []),
    "tariffs_6_complex": ("Tariff", []),
    "tariffs_7_free_of_charge": ("Tariff", []),
    "tokens_1_put_token": ("Token", []),
    "tokens_3_token": ("Token", []),
}
PARTIAL_211 = {
    "locations_1_patch_evse_status": "EVSE",
    "locations_2_patch_location_name": "Location",
    "locations_3_patch_connector_tariff": "Connector",
    "locations_5_patch_evse_removed": "EVSE",
    "sessions_1_patch_total_cost": "Session",
    "tariffs_2_patch_2_50_per_hour": "Tariff",
    "tokens_2_patch_invalidate": "Token",
}


@pytest.mark.parametrize("name", sorted(COMPLETE_211))
def test_official_211_examples_are_211_objects_but_for_their_known_slips(name: str) -> None:
    kind, slips = COMPLETE_211[name]
    assert sorted(check(ex211(name), kind)) == sorted(slips)


@pytest.mark.parametrize("name", sorted(PARTIAL_211))
def test_official_211_patch_examples_are_partial_211_objects(name: str) -> None:
    assert check(ex211(name), PARTIAL_211[name], partial=True) == []


def test_the_token_lists_of_the_transport_examples_are_211_tokens() -> None:
    assert check(ex211("transport_3_get_token_response")["data"], "Token") == []
    listed = ex211("transport_4_get_token_list_response")["data"]
    assert listed and all(check(token, "Token") == [] for token in listed)


def test_the_checker_refuses_2_2_1_objects() -> None:
    """Not a checker that cannot fail: the 2.2.1 examples of the same things are not 2.1.1 objects."""
    location = check(ex221("location_example"), "Location")
    assert "Location.country_code: unknown field (not in OCPI 2.1.1 Location)" in location
    assert "Location.type: required field missing" in location
    assert (
        "Location.evses[0].connectors[0].max_voltage: unknown field (not in OCPI 2.1.1 Connector)" in location
    )
    token = check(ex221("token_put_example"), "Token")
    assert "Token.contract_id: unknown field (not in OCPI 2.1.1 Token)" in token
    assert "Token.auth_id: required field missing" in token
    cdr = check(ex221("cdr_example"), "CDR")
    assert any(p.startswith("CDR.total_cost:") for p in cdr)  # a Price object, not a number
    assert "CDR.cdr_location: unknown field (not in OCPI 2.1.1 CDR)" in cdr


# --- what the hub receives in 2.1.1 becomes a 2.2.1 object the hub accepts ---

TOKENS_211 = ["tokens_1_put_token", "tokens_3_token"]


@pytest.mark.parametrize("name", TOKENS_211)
def test_a_211_token_is_a_221_token_of_the_emsp(name: str) -> None:
    token = ex211(name)
    translated = OcpiToken.model_validate(objects.token_from_211(token, "NL", "TNM"))
    assert (translated.country_code, translated.party_id) == ("NL", "TNM")
    assert translated.uid == token["uid"]
    assert translated.contract_id == token["auth_id"]
    assert (translated.type, translated.issuer, translated.valid, translated.whitelist) == (
        token["type"],
        token["issuer"],
        token["valid"],
        token["whitelist"],
    )
    assert translated.visual_number == token["visual_number"]


def test_the_211_tokens_of_a_token_list_are_221_tokens() -> None:
    listed = ex211("transport_4_get_token_list_response")["data"]
    one = ex211("transport_3_get_token_response")["data"]
    for token in [*listed, one]:
        OcpiToken.model_validate(objects.token_from_211(token, "NL", "TNM"))


def test_a_211_token_patch_translates_key_by_key() -> None:
    """The 2.1.1 PATCH example carries only ``valid``: so does its 2.2.1 form (no party, no other key)."""
    assert objects.token_from_211(ex211("tokens_2_patch_invalidate"), "NL", "TNM") == {"valid": False}
    patch = objects.token_from_211(
        {"auth_id": "NL-TNM-C1", "last_updated": "2015-06-29T22:39:09Z"}, "NL", "TNM"
    )
    assert patch == {"contract_id": "NL-TNM-C1", "last_updated": "2015-06-29T22:39:09Z"}
    assert TokenPatch.model_validate(patch).contract_id == "NL-TNM-C1"


def _token_211() -> Any:
    return ex211("tokens_3_token")


# mod_commands.md 3.2-3.5 (2.1.1 has no JSON example of a command): every field of each table
COMMANDS_211: dict[str, tuple[dict[str, Any], type[Any]]] = {
    "START_SESSION": (
        {
            "response_url": "https://emsp.example.com/ocpi/emsp/2.1.1/commands/START_SESSION/1",
            "token": "TOKEN",
            "location_id": "LOC1",
            "evse_uid": "3256",
        },
        StartSession,
    ),
    "STOP_SESSION": (
        {
            "response_url": "https://emsp.example.com/ocpi/emsp/2.1.1/commands/STOP_SESSION/2",
            "session_id": "101",
        },
        StopSession,
    ),
    "RESERVE_NOW": (
        {
            "response_url": "https://emsp.example.com/ocpi/emsp/2.1.1/commands/RESERVE_NOW/3",
            "token": "TOKEN",
            "expiry_date": "2015-06-29T23:39:09Z",
            "reservation_id": 1234,
            "location_id": "LOC1",
            "evse_uid": "3256",
        },
        ReserveNow,
    ),
    "UNLOCK_CONNECTOR": (
        {
            "response_url": "https://emsp.example.com/ocpi/emsp/2.1.1/commands/UNLOCK_CONNECTOR/4",
            "location_id": "LOC1",
            "evse_uid": "3256",
            "connector_id": "1",
        },
        UnlockConnector,
    ),
}


@pytest.mark.parametrize("command", sorted(COMMANDS_211))
def test_a_211_command_is_the_221_command(command: str) -> None:
    body, model = COMMANDS_211[command]
    body = {k: (_token_211() if v == "TOKEN" else v) for k, v in body.items()}
    translated = objects.command_from_211(command, body, "NL", "TNM")
    parsed = model.model_validate(translated)
    assert parsed.response_url == body["response_url"]
    for key in ("location_id", "evse_uid", "connector_id", "session_id"):
        if key in body:
            assert getattr(parsed, key) == body[key]
    if "token" in body:
        assert check(body["token"], "Token") == []
        assert parsed.token.contract_id == body["token"]["auth_id"]
        assert (parsed.token.country_code, parsed.token.party_id) == ("NL", "TNM")
    if command == "RESERVE_NOW":
        assert parsed.reservation_id == "1234"  # 2.1.1 int, 2.2.1 CiString(36)


def test_a_command_211_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="CANCEL_RESERVATION"):
        objects.command_from_211(
            "CANCEL_RESERVATION",
            {"response_url": "https://e.example.com/r", "reservation_id": "1"},
            "NL",
            "TNM",
        )


def test_a_211_authorization_info_is_the_221_one_without_connectors() -> None:
    """mod_tokens.md 3.1 (no example in 2.1.1): every field; 2.2.1 LocationReferences have no connector_ids."""
    info = {
        "allowed": "ALLOWED",
        "location": {"location_id": "LOC1", "evse_uids": ["3256", "3257"], "connector_ids": ["1", "2"]},
        "info": {"language": "en", "text": "Welcome"},
    }
    assert check(info, "AuthorizationInfo") == []
    assert objects.authorization_info_from_211(info) == {
        "allowed": "ALLOWED",
        "location": {"location_id": "LOC1", "evse_uids": ["3256", "3257"]},
        "info": {"language": "en", "text": "Welcome"},
    }
    assert objects.authorization_info_from_211({"allowed": "BLOCKED"}) == {"allowed": "BLOCKED"}


def test_211_credentials_are_221_credentials_with_the_invited_role() -> None:
    creds = ex211("credentials_1_credentials")
    translated = Credentials.model_validate(objects.credentials_from_211(creds, "EMSP"))
    assert (translated.token, translated.url) == (creds["token"], creds["url"])
    [role] = translated.roles
    assert (role.role, role.country_code, role.party_id) == ("EMSP", "NL", "EXA")
    assert role.business_details.name == "Example Operator"


def test_the_hubs_221_credentials_are_211_credentials_of_its_first_cpo() -> None:
    for name in ("credentials_example", "credentials_example2"):
        hub = ex221(name)
        translated = objects.credentials_to_211(hub)
        assert check(translated, "Credentials") == []
        face = next(r for r in hub["roles"] if r["role"] == "CPO")
        assert (translated["country_code"], translated["party_id"]) == (
            face["country_code"],
            face["party_id"],
        )
        assert (translated["token"], translated["url"]) == (hub["token"], hub["url"])
    assert objects.credentials_from_211(objects.credentials_to_211(ex221("credentials_example")), "CPO")[
        "roles"
    ] == [next(r for r in ex221("credentials_example")["roles"] if r["role"] == "CPO")]


# --- what the hub sends: the 2.2.1 examples translated are exactly 2.1.1 objects ---

LOCATIONS_221 = [
    "location_example",
    "location_example_uc2_destination_charger",
    "location_example_uc3_destination_charger_not_published",
    "location_example_uc4_limited_visibility",
    "location_example_uc5_home_charge_point",
    "location_example_parking_garage_opening_hours",
]
TARIFFS_221 = sorted(p.stem for p in EX221.glob("tariff_*.json"))


@pytest.mark.parametrize("name", LOCATIONS_221)
def test_221_locations_become_211_locations(name: str) -> None:
    location = ex221(name)
    translated = objects.location_to_211(location)
    assert check(translated, "Location") == []
    assert translated["id"] == location["id"]
    assert translated["coordinates"] == location["coordinates"]
    for evse, evse_211 in zip(location.get("evses", []), translated.get("evses", []), strict=True):
        assert check(objects.evse_to_211(evse), "EVSE") == []
        for conn, conn_211 in zip(evse["connectors"], evse_211["connectors"], strict=True):
            assert (conn_211["voltage"], conn_211["amperage"]) == (conn["max_voltage"], conn["max_amperage"])
            assert check(objects.connector_to_211(conn), "Connector") == []


def test_the_221_location_example_has_the_layout_of_the_211_location_example() -> None:
    """The same location LOC1 in both specs: the same field paths (2.2.1 has a time_zone, which 2.1.1 has as
    an option; the 2.1.1 example's empty status_schedule list is not in 2.2.1's), the same values where the
    two examples describe the same thing."""
    translated = objects.location_to_211(ex221("location_example"))
    official = ex211("locations_6_location")
    assert paths(translated) - {"time_zone"} == paths(official) - {"evses[].status_schedule"}
    for key in ("id", "type", "name", "address", "city", "postal_code", "country", "coordinates", "operator"):
        assert translated[key] == official[key], key
    assert [e["uid"] for e in translated["evses"]] == [e["uid"] for e in official["evses"]]
    assert translated["evses"][0]["connectors"][0] == official["evses"][0]["connectors"][0]


def test_the_parking_type_and_the_new_enum_values_map_to_211() -> None:
    location = ex221("location_example")
    assert objects.location_to_211({**location, "parking_type": "ALONG_MOTORWAY"})["type"] == "OTHER"
    assert (
        objects.location_to_211({k: v for k, v in location.items() if k != "parking_type"})["type"]
        == "UNKNOWN"
    )
    no_postal = objects.location_to_211({k: v for k, v in location.items() if k != "postal_code"})
    assert no_postal["postal_code"] == ""
    assert check(no_postal, "Location") == []
    rich = {
        **location,
        "facilities": ["HOTEL", "METRO_STATION", "PARKING_LOT"],
        "coordinates": {"latitude": "52.37", "longitude": "4.8952341"},
        "address": "A" * 60,
        "state": "Oost-Vlaanderen",
        "publish_allowed_to": [{"uid": "X"}],
        "energy_mix": ex221("location_energymix_example_complete")["energy_mix"],
        "opening_times": ex221("location_hours_247_open_exception_closing"),
    }
    evse = rich["evses"][0]
    rich["evses"] = [
        {
            **evse,
            "capabilities": ["RESERVABLE", "DEBIT_CARD_PAYABLE", "TOKEN_GROUP_CAPABLE"],
            "connectors": [{**evse["connectors"][0], "power_type": "AC_2_PHASE", "tariff_ids": ["11", "12"]}],
        }
    ]
    translated = objects.location_to_211(rich)
    assert check(translated, "Location") == []
    assert translated["facilities"] == ["HOTEL"]
    assert translated["coordinates"] == {"latitude": "52.370000", "longitude": "4.895234"}
    assert translated["address"] == "A" * 45
    assert translated["evses"][0]["capabilities"] == ["RESERVABLE"]
    connector = translated["evses"][0]["connectors"][0]
    assert (connector["power_type"], connector["tariff_id"]) == ("AC_1_PHASE", "11")
    assert translated["opening_times"]["twentyfourseven"] is True
    impacts = translated["energy_mix"]["environ_impact"]
    assert impacts and [set(i) for i in impacts] == [{"source", "amount"}] * len(impacts)
    assert "regular_hours" not in translated["opening_times"]
    assert "state" not in translated and "publish_allowed_to" not in translated


def test_221_sessions_become_211_sessions_with_their_location() -> None:
    location = ex221("location_example")
    for name in ("session_example_1_simple_start", "session_example_2_short_finished"):
        session = ex221(name)
        translated = objects.session_to_211(session, location)
        assert check(translated, "Session") == []
        assert translated["auth_id"] == session["cdr_token"]["contract_id"]
        assert translated["start_datetime"] == session["start_date_time"]
        assert translated["total_cost"] == session["total_cost"]["excl_vat"]
        assert isinstance(translated["total_cost"], Decimal)
        [evse] = translated["location"]["evses"]
        [connector] = evse["connectors"]
        assert (evse["uid"], connector["id"]) == (session["evse_uid"], session["connector_id"])


def test_the_221_session_example_has_the_layout_of_the_211_session_example() -> None:
    translated = objects.session_to_211(ex221("session_example_2_short_finished"), ex221("location_example"))
    official = ex211("sessions_3_completed")
    ours_only = {
        "location.time_zone",
        "location.operator",
        "location.operator.name",
        "location.evses[].capabilities",
        "location.evses[].floor_level",
        "location.evses[].physical_reference",
    }
    assert paths(translated) - ours_only == paths(official)
    for key in ("id", "start_datetime", "end_datetime", "auth_method", "currency", "total_cost", "status"):
        assert translated[key] == official[key], key
    assert [p["start_date_time"] for p in translated["charging_periods"]] == [
        p["start_date_time"] for p in official["charging_periods"]
    ]


def test_session_status_and_auth_method_of_221_only_map_to_211() -> None:
    session = {**ex221("session_example_1_simple_start"), "status": "RESERVATION", "auth_method": "COMMAND"}
    translated = objects.session_to_211(session, ex221("location_example"))
    assert (translated["status"], translated["auth_method"]) == ("PENDING", "AUTH_REQUEST")
    assert check(translated, "Session") == []


def test_221_tariffs_become_211_tariffs() -> None:
    for name in TARIFFS_221:
        tariff = ex221(name)
        translated = objects.tariff_to_211(tariff)
        assert check(translated, "Tariff") == [], name
        prices = [p["price"] for e in translated["elements"] for p in e["price_components"]]
        original = [p["price"] for e in tariff["elements"] for p in e["price_components"]]
        assert set(prices) <= set(original)  # excl. VAT both; never recomputed


@pytest.mark.parametrize(
    ("name_221", "name_211"),
    [
        ("tariff_1_simple_2hour", "tariffs_3_2_euro_per_hour"),
        ("tariff_2_alt_text", "tariffs_4_alt_text"),
        ("tariff_3_alt_url", "tariffs_5_alt_url"),
        ("tariff_5_free_of_charge", "tariffs_7_free_of_charge"),
    ],
)
def test_221_tariff_examples_have_the_layout_of_the_211_ones(name_221: str, name_211: str) -> None:
    assert paths(objects.tariff_to_211(ex221(name_221))) == paths(ex211(name_211))


def test_reservation_and_current_restricted_elements_are_left_out() -> None:
    reservation = objects.tariff_to_211(ex221("tariff_17_reservation_with_expire_fee"))
    assert [[p["type"] for p in e["price_components"]] for e in reservation["elements"]] == [
        ["FLAT", "ENERGY"]
    ]
    complex_221 = ex221("tariff_4_complex")
    complex_211 = objects.tariff_to_211(complex_221)
    assert not any("max_current" in (e.get("restrictions") or {}) for e in complex_211["elements"])
    assert len(complex_211["elements"]) == len(complex_221["elements"]) - 3
    only_current = {
        **complex_221,
        "elements": [e for e in complex_221["elements"] if "current" in str(e.get("restrictions"))],
    }
    kept = objects.tariff_to_211(only_current)
    assert len(kept["elements"]) == 3 and check(kept, "Tariff") == []


@pytest.mark.parametrize(
    "name", ["token_put_example", "token_example_1_app_user", "token_example_2_full_rfid"]
)
def test_221_tokens_become_211_tokens(name: str) -> None:
    token = ex221(name)
    translated = objects.token_to_211(token)
    assert check(translated, "Token") == []
    assert translated["auth_id"] == token["contract_id"]
    back = objects.token_from_211(translated, token["country_code"], token["party_id"])
    assert OcpiToken.model_validate(back).uid == token["uid"]


def test_the_221_token_example_has_the_layout_of_the_211_one() -> None:
    assert paths(objects.token_to_211(ex221("token_put_example"))) == paths(ex211("tokens_1_put_token"))


@pytest.mark.parametrize(
    ("result_221", "result_211"),
    [
        ("ACCEPTED", "ACCEPTED"),
        ("CANCELED_RESERVATION", "REJECTED"),
        ("EVSE_OCCUPIED", "REJECTED"),
        ("EVSE_INOPERATIVE", "REJECTED"),
        ("FAILED", "REJECTED"),
        ("NOT_SUPPORTED", "NOT_SUPPORTED"),
        ("REJECTED", "REJECTED"),
        ("TIMEOUT", "TIMEOUT"),
        ("UNKNOWN_RESERVATION", "REJECTED"),
    ],
)
def test_every_221_command_result_is_a_211_command_response(result_221: str, result_211: str) -> None:
    result = CommandResult.model_validate(
        {"result": result_221, "message": [{"language": "en", "text": "x"}]}
    ).model_dump(exclude_none=True)
    translated = objects.command_result_to_211(result)
    assert translated == {"result": result_211}
    assert check(translated, "CommandResponse") == []


@pytest.mark.parametrize("result", ["NOT_SUPPORTED", "REJECTED", "ACCEPTED", "UNKNOWN_SESSION"])
def test_every_221_command_response_is_a_211_one(result: str) -> None:
    response = CommandResponse.model_validate({"result": result, "timeout": 30}).model_dump(exclude_none=True)
    translated = objects.command_response_to_211(response)
    assert translated == {"result": result}
    assert check(translated, "CommandResponse") == []


def test_location_references_of_a_realtime_authorization_are_211() -> None:
    references = {"location_id": "LOC1", "evse_uids": ["3256"]}
    translated = objects.location_references_to_211(references)
    assert translated == references
    assert check(translated, "LocationReferences") == []


# --- money: the CDR of a 2.1.1 partner carries the same money as the 2.2.1 CDR ---


def test_a_cdr_keeps_its_money_energy_and_times() -> None:
    cdr = ex221("cdr_example")
    translated = objects.cdr_to_211(cdr, location=ex221("location_example"))
    assert check(translated, "CDR") == []
    assert translated["total_cost"] == cdr["total_cost"]["excl_vat"] == Decimal("4.00")
    assert isinstance(translated["total_cost"], Decimal)
    for key in ("total_energy", "total_time"):
        assert translated[key] == cdr[key] and type(translated[key]) is type(cdr[key])
    with_parking = objects.cdr_to_211({**cdr, "total_parking_time": Decimal("0.25")})
    assert with_parking["total_parking_time"] == Decimal("0.25")
    assert "total_parking_time" not in translated
    assert jsonutil.dumps({"t": translated["total_cost"]}) == '{"t": 4.00}'


def test_a_credit_cdr_keeps_its_negative_total_and_says_what_it_credits() -> None:
    cdr = {
        **ex221("cdr_example"),
        "id": "12345-C",
        "credit": True,
        "credit_reference_id": "12345",
        "total_cost": {"excl_vat": Decimal("-4.00"), "incl_vat": Decimal("-4.40")},
    }
    translated = objects.cdr_to_211(cdr)
    assert translated["total_cost"] == Decimal("-4.00")
    assert translated["remark"] == "Credit CDR of CDR 12345"
    assert check(translated, "CDR") == []


def test_the_221_cdr_example_has_the_layout_of_the_211_cdr_example() -> None:
    """The same CDR 12345 at LOC1 in both specs; with the location, the connector's voltage, amperage and
    tariff come from there; only the location type is ON_STREET in the 2.1.1 example (a CdrLocation has no
    type; location_example has no parking_type)."""
    translated = objects.cdr_to_211(ex221("cdr_example"), location=ex221("location_example"))
    official = ex211("cdrs_1_cdr")
    assert paths(translated) == paths(official)
    for key in ("id", "start_date_time", "stop_date_time", "auth_id", "auth_method", "currency"):
        assert translated[key] == official[key], key
    for key in ("total_cost", "total_energy", "total_time", "charging_periods"):
        assert translated[key] == official[key], key
    connector = translated["location"]["evses"][0]["connectors"][0]
    assert (connector["voltage"], connector["amperage"], connector["tariff_id"]) == (220, 16, "11")
    bare = objects.cdr_to_211(ex221("cdr_example"))
    assert check(bare, "CDR") == []
    assert bare["location"]["type"] == "UNKNOWN"
    assert bare["location"]["evses"][0]["status"] == "UNKNOWN"


def test_charging_periods_keep_only_211_dimensions() -> None:
    periods = [
        {
            "start_date_time": "2015-06-29T21:39:09Z",
            "dimensions": [
                {"type": "RESERVATION_TIME", "volume": Decimal("0.25")},
            ],
            "tariff_id": "12",
        },
        {
            "start_date_time": "2015-06-29T21:54:09Z",
            "dimensions": [
                {"type": "ENERGY", "volume": Decimal("5.5")},
                {"type": "POWER", "volume": Decimal("11")},
                {"type": "STATE_OF_CHARGE", "volume": 80},
                {"type": "TIME", "volume": Decimal("0.5")},
            ],
            "tariff_id": "12",
        },
    ]
    assert objects.charging_periods_to_211(periods) == [
        {
            "start_date_time": "2015-06-29T21:54:09Z",
            "dimensions": [
                {"type": "ENERGY", "volume": Decimal("5.5")},
                {"type": "TIME", "volume": Decimal("0.5")},
            ],
        }
    ]


# --- partial objects (PATCH bodies) translate key by key ---


def test_location_patches_translate_key_by_key() -> None:
    assert objects.evse_to_211(ex221("location_patch_example_status")) == ex221(
        "location_patch_example_status"
    )
    assert objects.evse_to_211(ex221("location_patch_example_remove_evse")) == {
        "status": "REMOVED",
        "last_updated": "2019-06-24T12:39:09Z",
    }
    name = objects.location_to_211(ex221("location_patch_example_location"))
    assert name == {"name": "Interparking Gent Zuid", "last_updated": "2019-06-24T12:39:09Z"}
    assert check(name, "Location", partial=True) == []
    tariff = objects.connector_to_211(ex221("location_patch_example_tariff"))
    assert tariff == {"tariff_id": "15", "last_updated": "2019-06-24T12:39:09Z"}
    assert paths(tariff) - {"last_updated"} == paths(ex211("locations_3_patch_connector_tariff"))
    assert (
        objects.connector_to_211({"tariff_ids": [], "last_updated": "2019-06-24T12:39:09Z"})["tariff_id"]
        is None
    )


def test_session_patches_translate_key_by_key() -> None:
    cost = objects.session_to_211(ex221("session_patch_example_total_cost"))
    assert cost == {"total_cost": Decimal("0.60"), "last_updated": "2019-06-23T08:11:00Z"}
    assert paths(cost) - {"last_updated"} == paths(ex211("sessions_1_patch_total_cost"))
    periods = objects.session_to_211(
        ex221("session_patch_example_charging_period"), ex221("location_example")
    )
    assert set(periods) == {"kwh", "charging_periods", "total_cost", "last_updated"}
    assert check(periods, "Session", partial=True) == []
    assert objects.session_to_211({"status": "COMPLETED", "end_date_time": "2019-06-23T09:00:00Z"}) == {
        "status": "COMPLETED",
        "end_datetime": "2019-06-23T09:00:00Z",
    }


def test_the_221_add_evse_example_has_the_slips_of_the_211_one() -> None:
    """The PUT-an-EVSE examples of both specs share their slips (numbers for strings, a connector without its
    required fields); translated, the 2.2.1 one is flagged exactly where the 2.1.1 one is (its ``floor`` typo
    is not a field, so it is dropped: no floor_level)."""
    translated = objects.evse_to_211(ex221("location_put_example_add_evse"))
    assert "floor" not in translated
    official_slips = set(COMPLETE_211["locations_4_put_evse"][1]) - {
        "EVSE.floor_level: expected a string, got int",
        "EVSE.last_updated: required field missing",
    }
    assert set(check(translated, "EVSE")) == official_slips


# --- what the hub renders (ocpi.render_objects) in a seeded world, translated ---


async def test_the_hubs_rendered_objects_become_211_objects_with_the_same_money(db: Database) -> None:
    """A priced session of the demo network (40 min charging, 25 min parked, 8 kWh at AMS-01-2): its Location,
    Session, CDR and the tariffs, as the hub renders them in 2.2.1, translated: exactly 2.1.1 objects, and the
    CDR's total_cost is the 2.2.1 excl_vat with the same energy and times."""
    await seed_pricing_network(db)
    start = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    await seed_ended_session(db, "AMS-01-2", start, 65, "8", uid="park", charge_minutes=40)
    assert await rate_pending(db, ()) == 1
    async with db.session() as s:
        cdr_row = await s.scalar(select(Cdr))
        assert cdr_row is not None
        cs = await s.get(ChargingSession, cdr_row.session_id)
        assert cs is not None and cs.location_id is not None
        cpo = await s.get(Party, cs.cpo_id)
        loc = await load_location(s, cs.location_id)
        assert cpo is not None and loc is not None
        location = location_object(loc, cpo)
        session = await session_object(s, cs, cpo)
        cdr = cdr_object(cdr_row)
        tariffs = [tariff_object(tv, cpo) for tv in (await s.scalars(select(TariffVersion))).all()]
    assert check(objects.location_to_211(location), "Location") == []
    session_211 = objects.session_to_211(session, location)
    assert check(session_211, "Session") == []
    assert [e["uid"] for e in session_211["location"]["evses"]] == ["AMS-01-2"]
    cdr_211 = objects.cdr_to_211(cdr, location=location)
    assert check(cdr_211, "CDR") == []
    assert cdr_211["total_cost"] == cdr["total_cost"]["excl_vat"]
    assert Decimal(str(cdr_211["total_cost"])) == cdr_row.total_cost_excl_vat == Decimal("6.12")
    for key in ("total_energy", "total_time", "total_parking_time"):
        assert cdr_211.get(key) == cdr.get(key), key
    assert cdr_211["location"]["type"] == objects.PARKING_TYPE_TO_LOCATION_TYPE.get(
        location.get("parking_type", ""), "UNKNOWN"
    )
    assert tariffs and all(check(objects.tariff_to_211(t), "Tariff") == [] for t in tariffs)


@pytest.mark.parametrize(
    ("type_221", "type_211"),
    [("RFID", "RFID"), ("OTHER", "OTHER"), ("APP_USER", "OTHER"), ("AD_HOC_USER", "OTHER")],
)
def test_token_types_of_221_only_are_other_in_211(type_221: str, type_211: str) -> None:
    assert objects.token_type_to_211(type_221) == type_211
    token = {**ex221("token_example_1_app_user"), "type": type_221}
    assert objects.token_to_211(token)["type"] == type_211
