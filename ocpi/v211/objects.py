"""Pure translations between the hub's OCPI 2.2.1 objects and OCPI 2.1.1 (no I/O, no database).

Outgoing (2.2.1 → 2.1.1), each accepting a complete object or a partial one (a PATCH body: only the keys
present are translated): :func:`location_to_211`, :func:`evse_to_211`, :func:`connector_to_211`,
:func:`session_to_211`, :func:`cdr_to_211`, :func:`tariff_to_211`, :func:`token_to_211`,
:func:`command_response_to_211`, :func:`command_result_to_211`, :func:`location_references_to_211`,
:func:`credentials_to_211`; helpers: :func:`location_of` (a Session's Location), :func:`cdr_location_to_211`,
:func:`charging_periods_to_211`, :func:`excl_vat`, :func:`token_type_to_211`.
Incoming (2.1.1 → 2.2.1): :func:`token_from_211`, :func:`command_from_211`,
:func:`authorization_info_from_211`, :func:`credentials_from_211`.

The rules follow the two specifications' object tables (2.1.1: github.com/ocpi/ocpi branch
release-2.1.1-bugfixes; 2.2.1: branch release-2.2.1-bugfixes). A 2.2.1-only field or enum value is mapped to
its 2.1.1 equivalent where one exists and dropped otherwise; docs/ocpi.md ("OCPI 2.1.1: what differs") lists
every mapping and every loss. Money: a 2.1.1 ``total_cost`` is a number excluding VAT, so it is the 2.2.1
``total_cost.excl_vat`` as it is (a Decimal stays a Decimal; the hub's JSON codec writes it exactly), and
tariff prices are excluding VAT in both versions. Keys a version does not know are never passed through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

Obj = dict[str, Any]

# --- enums of 2.1.1 (mod_locations 4.x, mod_cdrs 4.x, mod_tariffs 4.x, mod_tokens 4.x, mod_commands 4.x) ---

CAPABILITIES_211 = frozenset(
    {
        "CHARGING_PROFILE_CAPABLE",
        "CREDIT_CARD_PAYABLE",
        "REMOTE_START_STOP_CAPABLE",
        "RESERVABLE",
        "RFID_READER",
        "UNLOCK_CAPABLE",
    }
)
FACILITIES_211 = frozenset(
    {
        "HOTEL",
        "RESTAURANT",
        "CAFE",
        "MALL",
        "SUPERMARKET",
        "SPORT",
        "RECREATION_AREA",
        "NATURE",
        "MUSEUM",
        "BUS_STOP",
        "TAXI_STAND",
        "TRAIN_STATION",
        "AIRPORT",
        "CARPOOL_PARKING",
        "FUEL_STATION",
        "WIFI",
    }
)
PARKING_TYPE_TO_LOCATION_TYPE = {
    "ON_STREET": "ON_STREET",
    "PARKING_GARAGE": "PARKING_GARAGE",
    "UNDERGROUND_GARAGE": "UNDERGROUND_GARAGE",
    "PARKING_LOT": "PARKING_LOT",
    "ALONG_MOTORWAY": "OTHER",
    "ON_DRIVEWAY": "OTHER",
}
"""2.2.1 ``parking_type`` (optional) → 2.1.1 ``type`` (required; ``UNKNOWN`` when the location has none)."""

POWER_TYPE_211 = {
    "AC_1_PHASE": "AC_1_PHASE",
    "AC_3_PHASE": "AC_3_PHASE",
    "DC": "DC",
    "AC_2_PHASE": "AC_1_PHASE",
    "AC_2_PHASE_SPLIT": "AC_1_PHASE",
}
"""2.1.1 has no two-phase power types: they are sent as AC_1_PHASE (the power is never overstated)."""

DIMENSIONS_211 = frozenset({"ENERGY", "FLAT", "MAX_CURRENT", "MIN_CURRENT", "PARKING_TIME", "TIME"})
"""2.1.1 CdrDimensionType; the other 2.2.1 dimension types (CURRENT, ENERGY_EXPORT, ENERGY_IMPORT, MAX_POWER,
MIN_POWER, POWER, RESERVATION_TIME, STATE_OF_CHARGE) have no 2.1.1 equivalent and are dropped."""

SESSION_STATUS_211 = {
    "ACTIVE": "ACTIVE",
    "COMPLETED": "COMPLETED",
    "INVALID": "INVALID",
    "PENDING": "PENDING",
    "RESERVATION": "PENDING",
}
AUTH_METHOD_211 = {"AUTH_REQUEST": "AUTH_REQUEST", "WHITELIST": "WHITELIST", "COMMAND": "AUTH_REQUEST"}
"""2.1.1 AuthMethod has no COMMAND: a session started by a command was authorized by the eMSP's request."""

TOKEN_TYPE_211 = {"RFID": "RFID", "OTHER": "OTHER", "AD_HOC_USER": "OTHER", "APP_USER": "OTHER"}
COMMAND_RESULT_TO_211 = {
    "ACCEPTED": "ACCEPTED",
    "NOT_SUPPORTED": "NOT_SUPPORTED",
    "REJECTED": "REJECTED",
    "TIMEOUT": "TIMEOUT",
    "FAILED": "REJECTED",
    "EVSE_OCCUPIED": "REJECTED",
    "EVSE_INOPERATIVE": "REJECTED",
    "CANCELED_RESERVATION": "REJECTED",
    "UNKNOWN_RESERVATION": "REJECTED",
}
"""2.2.1 CommandResultType → 2.1.1 CommandResponseType (the result POSTed to ``response_url``)."""

COMMAND_RESPONSE_211 = frozenset({"NOT_SUPPORTED", "REJECTED", "ACCEPTED", "TIMEOUT", "UNKNOWN_SESSION"})
COMMANDS_211 = frozenset({"START_SESSION", "STOP_SESSION", "RESERVE_NOW", "UNLOCK_CONNECTOR"})

# --- the 2.1.1 field sets (what each translation may emit) ---

LOCATION_FIELDS_211 = (
    "id",
    "type",
    "name",
    "address",
    "city",
    "postal_code",
    "country",
    "coordinates",
    "related_locations",
    "evses",
    "directions",
    "operator",
    "suboperator",
    "owner",
    "facilities",
    "time_zone",
    "opening_times",
    "charging_when_closed",
    "images",
    "energy_mix",
    "last_updated",
)
EVSE_FIELDS_211 = (
    "uid",
    "evse_id",
    "status",
    "status_schedule",
    "capabilities",
    "connectors",
    "floor_level",
    "coordinates",
    "physical_reference",
    "directions",
    "parking_restrictions",
    "images",
    "last_updated",
)
CONNECTOR_FIELDS_211 = (
    "id",
    "standard",
    "format",
    "power_type",
    "voltage",
    "amperage",
    "tariff_id",
    "terms_and_conditions",
    "last_updated",
)
STRING_LIMITS_211 = {"address": 45}
"""2.1.1 string lengths shorter than 2.2.1's (Location.address: 45, 2.2.1: 255): longer values are cut."""

_LOCATION_REQUIRED_221 = ("id", "address", "city", "country", "coordinates")
_CONNECTOR_REQUIRED_221 = ("id", "standard", "format", "power_type")
_SIX_PLACES = Decimal("0.000001")


def _copy(source: Obj, keys: Iterable[str]) -> Obj:
    return {key: source[key] for key in keys if key in source}


def _complete(obj: Obj, required: Iterable[str]) -> bool:
    return all(key in obj for key in required)


def _six_decimals(value: Any) -> Any:
    """2.1.1 GeoLocation wants exactly 6 decimals (``-?[0-9]{1,3}\\.[0-9]{6}``); 2.2.1 allows 5 to 7."""
    try:
        return str(Decimal(str(value)).quantize(_SIX_PLACES))
    except (InvalidOperation, ValueError):
        return value


def _geo(point: Any) -> Any:
    if not isinstance(point, dict):
        return point
    out = dict(point)
    for key in ("latitude", "longitude"):
        if key in out:
            out[key] = _six_decimals(out[key])
    return {key: out[key] for key in ("latitude", "longitude", "name") if key in out}


def _translate(out: Obj, translations: Mapping[str, Callable[[Any], Any]]) -> None:
    """Each key of ``translations`` that ``out`` has, replaced by its translation (a key ``out`` lacks stays
    absent: a partial object, e.g. a PATCH body, stays partial)."""
    for key, translate in translations.items():
        if key in out:
            out[key] = translate(out[key])


def _each(values: Any, translate: Callable[[Obj], Obj]) -> Any:
    if not isinstance(values, list):
        return values
    return [translate(v) if isinstance(v, dict) else v for v in values]


def _known(values: Any, allowed: Iterable[str]) -> Any:
    if not isinstance(values, list):
        return values
    keep = set(allowed)
    return [v for v in values if v in keep]


def _energy_mix(mix: Any) -> Any:
    """2.2.1 EnvironmentalImpact names its category ``category``; 2.1.1 calls the same field ``source``."""
    if not isinstance(mix, dict):
        return mix
    out = _copy(
        mix, ("is_green_energy", "energy_sources", "environ_impact", "supplier_name", "energy_product_name")
    )
    if isinstance(out.get("environ_impact"), list):
        out["environ_impact"] = [
            {"source": item.get("category", item.get("source")), "amount": item.get("amount")}
            if isinstance(item, dict)
            else item
            for item in out["environ_impact"]
        ]
    return out


def _hours(hours: Any) -> Any:
    """2.1.1 Hours is a choice: ``twentyfourseven: true`` or ``regular_hours``; exceptions as in 2.2.1."""
    if not isinstance(hours, dict):
        return hours
    out: Obj = {}
    if hours.get("twentyfourseven") is True:
        out["twentyfourseven"] = True
    elif hours.get("regular_hours"):
        out["regular_hours"] = hours["regular_hours"]
    elif "twentyfourseven" in hours:
        out["twentyfourseven"] = hours["twentyfourseven"]
    out.update(_copy(hours, ("exceptional_openings", "exceptional_closings")))
    return out


def _business_details(details: Any) -> Any:
    if not isinstance(details, dict):
        return details
    out = _copy(details, ("name", "website", "logo"))
    if isinstance(out.get("logo"), dict):
        out["logo"] = _image(out["logo"])
    return out


def _image(image: Obj) -> Obj:
    return _copy(image, ("url", "thumbnail", "category", "type", "width", "height"))


def _cut(key: str, value: Any) -> Any:
    limit = STRING_LIMITS_211.get(key)
    if limit is not None and isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value


# --- Locations ---


def location_to_211(location: Obj) -> Obj:
    """A 2.2.1 Location (or partial Location) as a 2.1.1 Location."""
    out = _copy(location, LOCATION_FIELDS_211)
    out.pop("type", None)  # 2.2.1 has no Location.type; only parking_type gives it
    if "parking_type" in location:
        out["type"] = PARKING_TYPE_TO_LOCATION_TYPE.get(location["parking_type"], "UNKNOWN")
    elif _complete(location, _LOCATION_REQUIRED_221):
        out["type"] = "UNKNOWN"
    if _complete(location, _LOCATION_REQUIRED_221) and "postal_code" not in out:
        out["postal_code"] = ""  # required in 2.1.1, optional in 2.2.1 (a location without one)
    _translate(
        out,
        {
            "address": lambda v: _cut("address", v),
            "coordinates": _geo,
            "related_locations": lambda v: _each(v, _geo),
            "evses": lambda v: _each(v, evse_to_211),
            "operator": _business_details,
            "suboperator": _business_details,
            "owner": _business_details,
            "facilities": lambda v: _known(v, FACILITIES_211),
            "opening_times": _hours,
            "images": lambda v: _each(v, _image),
            "energy_mix": _energy_mix,
        },
    )
    return _ordered(out, LOCATION_FIELDS_211)


def evse_to_211(evse: Obj) -> Obj:
    """A 2.2.1 EVSE (or partial EVSE, e.g. a status PATCH) as a 2.1.1 EVSE."""
    out = _copy(evse, EVSE_FIELDS_211)
    _translate(
        out,
        {
            "capabilities": lambda v: _known(v, CAPABILITIES_211),
            "connectors": lambda v: _each(v, connector_to_211),
            "coordinates": _geo,
            "images": lambda v: _each(v, _image),
        },
    )
    return out


def connector_to_211(connector: Obj) -> Obj:
    """A 2.2.1 Connector (or partial) as a 2.1.1 Connector (``tariff_ids`` → ``tariff_id``...)."""
    out = _copy(connector, ("id", "standard", "format", "terms_and_conditions", "last_updated"))
    if "power_type" in connector:
        out["power_type"] = POWER_TYPE_211.get(connector["power_type"], connector["power_type"])
    if "max_voltage" in connector:
        out["voltage"] = connector["max_voltage"]
    if "max_amperage" in connector:
        out["amperage"] = connector["max_amperage"]
    if "tariff_ids" in connector:
        ids = connector["tariff_ids"] or []
        if ids:
            out["tariff_id"] = ids[0]  # 2.1.1 has one tariff per connector: the first one is sent
        elif not _complete(connector, _CONNECTOR_REQUIRED_221):
            out["tariff_id"] = None  # a PATCH that clears the tariffs
    return _ordered(out, CONNECTOR_FIELDS_211)


def _ordered(obj: Obj, order: Iterable[str]) -> Obj:
    return {key: obj[key] for key in order if key in obj}


def _same_id(a: Any, b: Any) -> bool:
    """CiString ids (2.2.1) compare without regard to case."""
    return isinstance(a, str) and isinstance(b, str) and a.upper() == b.upper()


def location_of(location: Obj, evse_uid: str | None, connector_id: str | None) -> Obj:
    """The 2.1.1 Location of a Session: the 2.2.1 ``location`` with only the EVSE ``evse_uid`` and, in it,
    only the connector ``connector_id`` (mod_sessions 3.1: "including only the relevant EVSE and
    connector")."""
    narrowed = dict(location)
    evses = [e for e in location.get("evses") or [] if isinstance(e, dict)]
    if evse_uid is not None:
        evses = [e for e in evses if _same_id(e.get("uid"), evse_uid)]
    if connector_id is not None:
        evses = [
            {**e, "connectors": [c for c in e.get("connectors") or [] if _same_id(c.get("id"), connector_id)]}
            for e in evses
        ]
    narrowed["evses"] = evses
    return location_to_211(narrowed)


# --- Sessions ---


def _auth(obj: Obj) -> Obj:
    """The 2.1.1 ``auth_id`` (the ``cdr_token``'s ``contract_id``) and ``auth_method`` of a 2.2.1 Session or
    CDR (or partial), those it has."""
    out: Obj = {}
    if isinstance(obj.get("cdr_token"), dict) and "contract_id" in obj["cdr_token"]:
        out["auth_id"] = obj["cdr_token"]["contract_id"]
    if "auth_method" in obj:
        out["auth_method"] = AUTH_METHOD_211.get(obj["auth_method"], obj["auth_method"])
    return out


def session_to_211(session: Obj, location: Obj | None = None) -> Obj:
    """A 2.2.1 Session (or partial) as a 2.1.1 Session. ``location`` is the 2.2.1 Location of the session
    (needed for a complete Session: 2.1.1 embeds the Location with only the session's EVSE and connector)."""
    out: Obj = {}
    if "id" in session:
        out["id"] = session["id"]
    if "start_date_time" in session:
        out["start_datetime"] = session["start_date_time"]
    if "end_date_time" in session:
        out["end_datetime"] = session["end_date_time"]
    if "kwh" in session:
        out["kwh"] = session["kwh"]
    out.update(_auth(session))
    touches_location = any(k in session for k in ("location_id", "evse_uid", "connector_id"))
    if location is not None and (touches_location or "id" in session):
        out["location"] = location_of(location, session.get("evse_uid"), session.get("connector_id"))
    out.update(_copy(session, ("meter_id", "currency")))
    if "charging_periods" in session:
        out["charging_periods"] = charging_periods_to_211(session["charging_periods"])
    if "total_cost" in session:
        out["total_cost"] = excl_vat(session["total_cost"])
    if "status" in session:
        out["status"] = SESSION_STATUS_211.get(session["status"], session["status"])
    if "last_updated" in session:
        out["last_updated"] = session["last_updated"]
    return out


def excl_vat(price: Any) -> Any:
    """A 2.2.1 Price as the 2.1.1 number excluding VAT (``excl_vat``, the same Decimal); None stays None."""
    if isinstance(price, dict):
        return price.get("excl_vat")
    return price


def charging_periods_to_211(periods: Any) -> Any:
    """Only 2.1.1 dimension types are kept; a period left without dimensions (2.1.1: ``+``) is dropped, and
    the 2.2.1 ``tariff_id`` of a period is dropped (2.1.1 has none)."""
    if not isinstance(periods, list):
        return periods
    out = []
    for period in periods:
        if not isinstance(period, dict):
            continue
        dimensions = [
            {"type": d["type"], "volume": d.get("volume")}
            for d in period.get("dimensions") or []
            if isinstance(d, dict) and d.get("type") in DIMENSIONS_211
        ]
        if dimensions:
            out.append({"start_date_time": period.get("start_date_time"), "dimensions": dimensions})
    return out


# --- CDRs ---


def cdr_to_211(cdr: Obj, *, location: Obj | None = None) -> Obj:
    """A 2.2.1 CDR as a 2.1.1 CDR (its Location built from ``cdr_location``); the same money.

    ``location`` (optional, keyword added to the contract) is the current 2.2.1 Location of the CDR: when
    given, its type, EVSE status and the connector's voltage, amperage and tariff come from there (a
    CdrLocation has none of them); else the Location type is UNKNOWN, the EVSE status UNKNOWN and the
    connector's voltage and amperage 0 (unknown)."""
    out: Obj = {}
    out.update(_copy(cdr, ("id", "start_date_time")))
    if "end_date_time" in cdr:
        out["stop_date_time"] = cdr["end_date_time"]
    out.update(_auth(cdr))
    if isinstance(cdr.get("cdr_location"), dict):
        out["location"] = cdr_location_to_211(cdr["cdr_location"], cdr.get("last_updated"), location)
    out.update(_copy(cdr, ("meter_id", "currency")))
    if "tariffs" in cdr:
        out["tariffs"] = _each(cdr["tariffs"], tariff_to_211)
    if "charging_periods" in cdr:
        out["charging_periods"] = charging_periods_to_211(cdr["charging_periods"])
    if "total_cost" in cdr:
        out["total_cost"] = excl_vat(cdr["total_cost"])
    out.update(_copy(cdr, ("total_energy", "total_time", "total_parking_time", "remark")))
    if cdr.get("credit") is True and "remark" not in out:
        # 2.1.1 has no Credit CDRs: the negative total_cost is sent with a remark naming the credited CDR
        out["remark"] = f"Credit CDR of CDR {cdr.get('credit_reference_id', '')}".strip()
    if "last_updated" in cdr:
        out["last_updated"] = cdr["last_updated"]
    return out


def cdr_location_to_211(cdr_location: Obj, last_updated: Any, location: Obj | None = None) -> Obj:
    """A 2.2.1 CdrLocation as the 2.1.1 Location of a CDR: one EVSE with one connector, each stamped
    ``last_updated`` (the CDR's)."""
    live_evse: Obj = {}
    live_connector: Obj = {}
    if location is not None:
        for evse in location.get("evses") or []:
            if isinstance(evse, dict) and _same_id(evse.get("uid"), cdr_location.get("evse_uid")):
                live_evse = evse
                for conn in evse.get("connectors") or []:
                    if isinstance(conn, dict) and _same_id(conn.get("id"), cdr_location.get("connector_id")):
                        live_connector = conn
    connector: Obj = {
        "id": cdr_location.get("connector_id"),
        "standard": cdr_location.get("connector_standard"),
        "format": cdr_location.get("connector_format"),
        "power_type": cdr_location.get("connector_power_type"),
        "max_voltage": live_connector.get("max_voltage", 0),
        "max_amperage": live_connector.get("max_amperage", 0),
        "last_updated": last_updated,
    }
    if live_connector.get("tariff_ids"):
        connector["tariff_ids"] = live_connector["tariff_ids"]
    one_evse: Obj = {"uid": cdr_location.get("evse_uid")}
    if cdr_location.get("evse_id"):
        one_evse["evse_id"] = cdr_location["evse_id"]
    one_evse.update(
        {
            "status": live_evse.get("status", "UNKNOWN"),
            "connectors": [connector],
            "last_updated": last_updated,
        }
    )
    loc: Obj = _copy(cdr_location, ("id", "name", "address", "city", "postal_code", "country", "coordinates"))
    if location is not None and "parking_type" in location:
        loc["parking_type"] = location["parking_type"]
    loc["evses"] = [one_evse]
    loc["last_updated"] = last_updated
    return location_to_211(loc)


# --- Tariffs ---

_TARIFF_KEEP = (
    "id",
    "currency",
    "tariff_alt_text",
    "tariff_alt_url",
    "elements",
    "energy_mix",
    "last_updated",
)
RESTRICTIONS_211 = (
    "start_time",
    "end_time",
    "start_date",
    "end_date",
    "min_kwh",
    "max_kwh",
    "min_power",
    "max_power",
    "min_duration",
    "max_duration",
    "day_of_week",
)


def tariff_to_211(tariff: Obj) -> Obj:
    """A 2.2.1 Tariff as a 2.1.1 Tariff.

    Dropped: ``country_code``, ``party_id``, ``type``, ``min_price``, ``max_price``, ``start_date_time``,
    ``end_date_time`` and each price component's ``vat`` (prices are excluding VAT in both versions). An
    element whose restrictions 2.1.1 cannot express is left out, since without them it would apply where
    it does not: a ``reservation`` element (2.1.1 bills no reservations) and a ``min_current``/
    ``max_current`` one; only when that would leave no element at all are the current-restricted ones sent
    without their current restriction (2.1.1 wants at least one element)."""
    out = _copy(tariff, _TARIFF_KEEP)
    if isinstance(out.get("elements"), list):
        charging = [
            e
            for e in out["elements"]
            if isinstance(e, dict) and not (e.get("restrictions") or {}).get("reservation")
        ]
        expressible = [e for e in charging if not _current_restricted(e)]
        out["elements"] = [_element(e) for e in (expressible or charging)]
    if "energy_mix" in out:
        out["energy_mix"] = _energy_mix(out["energy_mix"])
    return out


def _current_restricted(element: Obj) -> bool:
    restrictions = element.get("restrictions") or {}
    return any(restrictions.get(key) is not None for key in ("min_current", "max_current"))


def _element(element: Obj) -> Obj:
    out: Obj = {
        "price_components": [
            _copy(p, ("type", "price", "step_size"))
            for p in element.get("price_components") or []
            if isinstance(p, dict)
        ]
    }
    restrictions = element.get("restrictions")
    if isinstance(restrictions, dict):
        kept = _copy(restrictions, RESTRICTIONS_211)
        if kept:
            out["restrictions"] = kept
    return out


# --- Tokens ---

TOKEN_FIELDS_211 = (
    "uid",
    "type",
    "auth_id",
    "visual_number",
    "issuer",
    "valid",
    "whitelist",
    "language",
    "last_updated",
)


def token_to_211(token: Obj) -> Obj:
    """A 2.2.1 Token as a 2.1.1 Token (``contract_id`` → ``auth_id``; AD_HOC_USER and APP_USER → OTHER;
    ``country_code``, ``party_id``, ``group_id``, ``default_profile_type``, ``energy_contract`` dropped)."""
    out = _copy(token, ("uid", "visual_number", "issuer", "valid", "whitelist", "language", "last_updated"))
    if "type" in token:
        out["type"] = token_type_to_211(token["type"])
    if "contract_id" in token:
        out["auth_id"] = token["contract_id"]
    return _ordered(out, TOKEN_FIELDS_211)


def token_type_to_211(token_type: str) -> str:
    """A 2.2.1 TokenType as 2.1.1's (RFID, OTHER): the ``type`` of a real-time authorization request."""
    return TOKEN_TYPE_211.get(token_type, "OTHER")


def token_from_211(token: Obj, country_code: str, party_id: str) -> Obj:
    """A 2.1.1 Token (or partial, a PATCH) from the eMSP ``country_code``/``party_id`` as a 2.2.1 Token.

    ``auth_id`` → ``contract_id``; the eMSP's ``country_code``/``party_id`` are added to a complete Token
    (one with a ``uid``) and to a partial one only as the keys it already names (a PATCH never moves a
    token to another party)."""
    out: Obj = {}
    if "uid" in token:
        out["country_code"] = country_code
        out["party_id"] = party_id
    out.update(_copy(token, ("uid", "type")))
    if "auth_id" in token:
        out["contract_id"] = token["auth_id"]
    out.update(_copy(token, ("visual_number", "issuer", "valid", "whitelist", "language", "last_updated")))
    return out


# --- Commands ---


def command_from_211(command: str, body: Obj, country_code: str, party_id: str) -> Obj:
    """A 2.1.1 command request body (START_SESSION, STOP_SESSION, RESERVE_NOW, UNLOCK_CONNECTOR) from the
    eMSP ``country_code``/``party_id`` as the 2.2.1 body of the same command.

    Raises ValueError for a command 2.1.1 does not have (CANCEL_RESERVATION is 2.2.1 only)."""
    if command not in COMMANDS_211:
        raise ValueError(f"OCPI 2.1.1 has no command {command!r}")
    if command == "STOP_SESSION":
        return _copy(body, ("response_url", "session_id"))
    if command == "UNLOCK_CONNECTOR":
        return _copy(body, ("response_url", "location_id", "evse_uid", "connector_id"))
    keys: tuple[str, ...] = ("response_url", "token", "location_id", "evse_uid")
    if command == "RESERVE_NOW":
        keys = ("response_url", "token", "expiry_date", "reservation_id", "location_id", "evse_uid")
    out = _copy(body, keys)
    if isinstance(out.get("token"), dict):
        out["token"] = token_from_211(out["token"], country_code, party_id)
    if isinstance(out.get("reservation_id"), int) and not isinstance(out["reservation_id"], bool):
        out["reservation_id"] = str(out["reservation_id"])  # 2.1.1 int, 2.2.1 CiString(36)
    return out


def command_response_to_211(response: Obj) -> Obj:
    """The 2.2.1 CommandResponse answered at once, as the 2.1.1 CommandResponse (``{"result": ...}``: 2.1.1
    has no ``timeout`` and no ``message``)."""
    result = response.get("result")
    return {"result": result if result in COMMAND_RESPONSE_211 else "REJECTED"}


def command_result_to_211(result: Obj) -> Obj:
    """The 2.2.1 CommandResult POSTed to ``response_url``, as the 2.1.1 CommandResponse sent there
    (:data:`COMMAND_RESULT_TO_211`; ``message`` dropped)."""
    return {"result": COMMAND_RESULT_TO_211.get(result.get("result", ""), "REJECTED")}


# --- Real-time authorization ---


def location_references_to_211(references: Obj) -> Obj:
    """The 2.2.1 LocationReferences of a real-time authorization request, in 2.1.1 form (the same
    ``location_id`` and ``evse_uids``; 2.1.1's optional ``connector_ids`` are not sent)."""
    return _copy(references, ("location_id", "evse_uids"))


def authorization_info_from_211(info: Obj) -> Obj:
    """A 2.1.1 AuthorizationInfo answer as a 2.2.1 AuthorizationInfo (no ``authorization_reference``).

    2.2.1 requires the ``token`` in it; 2.1.1 has none, so the caller adds the Token it asked about. The
    ``connector_ids`` of the 2.1.1 LocationReferences are dropped (2.2.1 has none)."""
    out = _copy(info, ("allowed",))
    if isinstance(info.get("location"), dict):
        out["location"] = _copy(info["location"], ("location_id", "evse_uids"))
    if "info" in info:
        out["info"] = info["info"]
    return out


# --- Credentials ---


def credentials_from_211(credentials: Obj, role: str) -> Obj:
    """A 2.1.1 Credentials object (one party) as a 2.2.1 Credentials object with one role ``role``."""
    out = _copy(credentials, ("token", "url"))
    out["roles"] = [
        {
            "role": role,
            "business_details": credentials.get("business_details"),
            "party_id": credentials.get("party_id"),
            "country_code": credentials.get("country_code"),
        }
    ]
    return out


def credentials_to_211(credentials: Obj) -> Obj:
    """The hub's 2.2.1 Credentials object (one role per hosted CPO) as a 2.1.1 Credentials object: 2.1.1
    carries one party, the first CPO role of ``roles`` (the caller puts the hub's face first), else the
    first role."""
    roles = [r for r in credentials.get("roles") or [] if isinstance(r, dict)]
    face = next((r for r in roles if r.get("role") == "CPO"), roles[0] if roles else {})
    out = _copy(credentials, ("token", "url"))
    out.update(_copy(face, ("business_details", "party_id", "country_code")))
    if isinstance(out.get("business_details"), dict):
        out["business_details"] = _business_details(out["business_details"])
    return out
