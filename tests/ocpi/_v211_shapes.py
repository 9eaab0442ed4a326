"""The OCPI 2.1.1 object tables (release-2.1.1-bugfixes, commit 28ea4532: mod_locations.md 3-4,
mod_sessions.md 3-4, mod_cdrs.md 3-4, mod_tariffs.md 3-4, mod_tokens.md 3-4, mod_commands.md 3-4,
credentials.md 2, types.md) transcribed, and :func:`check`: every way an object is not exactly that 2.1.1 object.

``check(obj, "Location")`` lists the problems by path: an unknown field, a missing required field (not for a
``partial=True`` PATCH body), a value of the wrong type, an enum value 2.1.1 does not list, a string longer
than its maximum, an empty list where the card. is ``+``, a choice (Hours) with not exactly one alternative.
GeoLocation coordinates have exactly six decimals. Nested objects are checked recursively. A quick checker of the 2.1.1 helpers (issue 13, item 4); the shared
version-parametric checker of ``tests/ocpi/_shapes.py`` may replace it.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

ENUMS: dict[str, frozenset[str]] = {
    "LocationType": frozenset(
        {"ON_STREET", "PARKING_GARAGE", "UNDERGROUND_GARAGE", "PARKING_LOT", "OTHER", "UNKNOWN"}
    ),
    "Status": frozenset(
        {
            "AVAILABLE",
            "BLOCKED",
            "CHARGING",
            "INOPERATIVE",
            "OUTOFORDER",
            "PLANNED",
            "REMOVED",
            "RESERVED",
            "UNKNOWN",
        }
    ),
    "Capability": frozenset(
        {
            "CHARGING_PROFILE_CAPABLE",
            "CREDIT_CARD_PAYABLE",
            "REMOTE_START_STOP_CAPABLE",
            "RESERVABLE",
            "RFID_READER",
            "UNLOCK_CAPABLE",
        }
    ),
    "ConnectorFormat": frozenset({"SOCKET", "CABLE"}),
    "ConnectorType": frozenset(
        {
            "CHADEMO",
            *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKL"),
            "IEC_60309_2_single_16",
            "IEC_60309_2_three_16",
            "IEC_60309_2_three_32",
            "IEC_60309_2_three_64",
            "IEC_62196_T1",
            "IEC_62196_T1_COMBO",
            "IEC_62196_T2",
            "IEC_62196_T2_COMBO",
            "IEC_62196_T3A",
            "IEC_62196_T3C",
            "TESLA_R",
            "TESLA_S",
        }
    ),
    "PowerType": frozenset({"AC_1_PHASE", "AC_3_PHASE", "DC"}),
    "Facility": frozenset(
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
    ),
    "ParkingRestriction": frozenset({"EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"}),
    "ImageCategory": frozenset({"CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER"}),
    "EnergySourceCategory": frozenset(
        {"NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER"}
    ),
    "EnvironmentalImpactCategory": frozenset({"NUCLEAR_WASTE", "CARBON_DIOXIDE"}),
    "SessionStatus": frozenset({"ACTIVE", "COMPLETED", "INVALID", "PENDING"}),
    "AuthMethod": frozenset({"AUTH_REQUEST", "WHITELIST"}),
    "CdrDimensionType": frozenset({"ENERGY", "FLAT", "MAX_CURRENT", "MIN_CURRENT", "PARKING_TIME", "TIME"}),
    "TariffDimensionType": frozenset({"ENERGY", "FLAT", "PARKING_TIME", "TIME"}),
    "DayOfWeek": frozenset({"MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"}),
    "TokenType": frozenset({"OTHER", "RFID"}),
    "WhitelistType": frozenset({"ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"}),
    "Allowed": frozenset({"ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"}),
    "CommandResponseType": frozenset({"NOT_SUPPORTED", "REJECTED", "ACCEPTED", "TIMEOUT", "UNKNOWN_SESSION"}),
}

# field -> "type card" ; type: string(N) | int | number | boolean | DateTime | URL | <Object> | <Enum>
OBJECTS: dict[str, dict[str, str]] = {
    "Location": {
        "id": "string(39) 1",
        "type": "LocationType 1",
        "name": "string(255) ?",
        "address": "string(45) 1",
        "city": "string(45) 1",
        "postal_code": "string(10) 1",
        "country": "string(3) 1",
        "coordinates": "GeoLocation 1",
        "related_locations": "AdditionalGeoLocation *",
        "evses": "EVSE *",
        "directions": "DisplayText *",
        "operator": "BusinessDetails ?",
        "suboperator": "BusinessDetails ?",
        "owner": "BusinessDetails ?",
        "facilities": "Facility *",
        "time_zone": "string(255) ?",
        "opening_times": "Hours ?",
        "charging_when_closed": "boolean ?",
        "images": "Image *",
        "energy_mix": "EnergyMix ?",
        "last_updated": "DateTime 1",
    },
    "EVSE": {
        "uid": "string(39) 1",
        "evse_id": "string(48) ?",
        "status": "Status 1",
        "status_schedule": "StatusSchedule *",
        "capabilities": "Capability *",
        "connectors": "Connector +",
        "floor_level": "string(4) ?",
        "coordinates": "GeoLocation ?",
        "physical_reference": "string(16) ?",
        "directions": "DisplayText *",
        "parking_restrictions": "ParkingRestriction *",
        "images": "Image *",
        "last_updated": "DateTime 1",
    },
    "Connector": {
        "id": "string(36) 1",
        "standard": "ConnectorType 1",
        "format": "ConnectorFormat 1",
        "power_type": "PowerType 1",
        "voltage": "int 1",
        "amperage": "int 1",
        "tariff_id": "string(36) ?",
        "terms_and_conditions": "URL ?",
        "last_updated": "DateTime 1",
    },
    "AdditionalGeoLocation": {"latitude": "latitude 1", "longitude": "longitude 1", "name": "DisplayText ?"},
    "GeoLocation": {"latitude": "latitude 1", "longitude": "longitude 1"},
    "BusinessDetails": {"name": "string(100) 1", "website": "URL ?", "logo": "Image ?"},
    "Image": {
        "url": "URL 1",
        "thumbnail": "URL ?",
        "category": "ImageCategory 1",
        "type": "string(4) 1",
        "width": "int ?",
        "height": "int ?",
    },
    "Hours": {
        "regular_hours": "RegularHours * choice",
        "twentyfourseven": "boolean 1 choice",
        "exceptional_openings": "ExceptionalPeriod *",
        "exceptional_closings": "ExceptionalPeriod *",
    },
    "RegularHours": {"weekday": "int 1", "period_begin": "string(5) 1", "period_end": "string(5) 1"},
    "ExceptionalPeriod": {"period_begin": "DateTime 1", "period_end": "DateTime 1"},
    "StatusSchedule": {"period_begin": "DateTime 1", "period_end": "DateTime ?", "status": "Status 1"},
    "EnergyMix": {
        "is_green_energy": "boolean 1",
        "energy_sources": "EnergySource *",
        "environ_impact": "EnvironmentalImpact *",
        "supplier_name": "string(64) ?",
        "energy_product_name": "string(64) ?",
    },
    "EnergySource": {"source": "EnergySourceCategory 1", "percentage": "number 1"},
    "EnvironmentalImpact": {"source": "EnvironmentalImpactCategory 1", "amount": "number 1"},
    "DisplayText": {"language": "string(2) 1", "text": "string(512) 1"},
    "Session": {
        "id": "string(36) 1",
        "start_datetime": "DateTime 1",
        "end_datetime": "DateTime ?",
        "kwh": "number 1",
        "auth_id": "string(36) 1",
        "auth_method": "AuthMethod 1",
        "location": "Location 1",
        "meter_id": "string(255) ?",
        "currency": "string(3) 1",
        "charging_periods": "ChargingPeriod *",
        "total_cost": "number ?",
        "status": "SessionStatus 1",
        "last_updated": "DateTime 1",
    },
    "CDR": {
        "id": "string(36) 1",
        "start_date_time": "DateTime 1",
        "stop_date_time": "DateTime 1",
        "auth_id": "string(36) 1",
        "auth_method": "AuthMethod 1",
        "location": "Location 1",
        "meter_id": "string(255) ?",
        "currency": "string(3) 1",
        "tariffs": "Tariff *",
        "charging_periods": "ChargingPeriod +",
        "total_cost": "number 1",
        "total_energy": "number 1",
        "total_time": "number 1",
        "total_parking_time": "number ?",
        "remark": "string(255) ?",
        "last_updated": "DateTime 1",
    },
    "ChargingPeriod": {"start_date_time": "DateTime 1", "dimensions": "CdrDimension +"},
    "CdrDimension": {"type": "CdrDimensionType 1", "volume": "number 1"},
    "Tariff": {
        "id": "string(36) 1",
        "currency": "string(3) 1",
        "tariff_alt_text": "DisplayText *",
        "tariff_alt_url": "URL ?",
        "elements": "TariffElement +",
        "energy_mix": "EnergyMix ?",
        "last_updated": "DateTime 1",
    },
    "TariffElement": {"price_components": "PriceComponent +", "restrictions": "TariffRestrictions ?"},
    "PriceComponent": {"type": "TariffDimensionType 1", "price": "number 1", "step_size": "int 1"},
    "TariffRestrictions": {
        "start_time": "string(5) ?",
        "end_time": "string(5) ?",
        "start_date": "string(10) ?",
        "end_date": "string(10) ?",
        "min_kwh": "number ?",
        "max_kwh": "number ?",
        "min_power": "number ?",
        "max_power": "number ?",
        "min_duration": "int ?",
        "max_duration": "int ?",
        "day_of_week": "DayOfWeek *",
    },
    "Token": {
        "uid": "string(36) 1",
        "type": "TokenType 1",
        "auth_id": "string(36) 1",
        "visual_number": "string(64) ?",
        "issuer": "string(64) 1",
        "valid": "boolean 1",
        "whitelist": "WhitelistType 1",
        "language": "string(2) ?",
        "last_updated": "DateTime 1",
    },
    "AuthorizationInfo": {
        "allowed": "Allowed 1",
        "location": "LocationReferences ?",
        "info": "DisplayText ?",
    },
    "LocationReferences": {
        "location_id": "string(39) 1",
        "evse_uids": "string(39) *",
        "connector_ids": "string(36) *",
    },
    "CommandResponse": {"result": "CommandResponseType 1"},
    "Credentials": {
        "token": "string(64) 1",
        "url": "URL 1",
        "business_details": "BusinessDetails 1",
        "party_id": "string(3) 1",
        "country_code": "string(2) 1",
    },
}

DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?")
STRING = re.compile(r"string\((\d+)\)")
PATTERNS = {
    "latitude": re.compile(r"-?[0-9]{1,2}\.[0-9]{6}"),
    "longitude": re.compile(r"-?[0-9]{1,3}\.[0-9]{6}"),
}
"""mod_locations.md 4.12 GeoLocation: string(10) / string(11), exactly six decimals."""


def check(obj: Any, name: str, *, partial: bool = False, path: str | None = None) -> list[str]:
    """Every way ``obj`` is not exactly the OCPI 2.1.1 object ``name``; [] when it is."""
    where = path or name
    table = OBJECTS[name]
    if not isinstance(obj, dict):
        return [f"{where}: expected a {name} object, got {type(obj).__name__}"]
    problems = [f"{where}.{key}: unknown field" for key in obj if key not in table]
    choices = [key for key, spec in table.items() if spec.endswith(" choice")]
    if choices and not partial and sum(1 for key in choices if key in obj) != 1:
        problems.append(f"{where}: exactly one of {choices} expected")
    for key, spec in table.items():
        kind, card = spec.split()[:2]
        if key not in obj:
            if card in ("1", "+") and not partial and key not in choices:
                problems.append(f"{where}.{key}: missing required field")
            continue
        value = obj[key]
        if value is None:
            if not partial:
                problems.append(f"{where}.{key}: null")
            continue
        if card in ("*", "+"):
            if not isinstance(value, list):
                problems.append(f"{where}.{key}: expected a list")
                continue
            if card == "+" and not value:
                problems.append(f"{where}.{key}: empty list (card. +)")
            for i, item in enumerate(value):
                problems += _value(item, kind, f"{where}.{key}[{i}]")
        else:
            problems += _value(value, kind, f"{where}.{key}")
    return problems


def _value(value: Any, kind: str, where: str) -> list[str]:
    if kind in OBJECTS:
        return check(value, kind, path=where)
    if kind in ENUMS:
        ok = isinstance(value, str) and value in ENUMS[kind]
        return [] if ok else [f"{where}: {value!r} is not a 2.1.1 {kind}"]
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not an int"]
    if kind == "number":
        ok = isinstance(value, int | Decimal) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not a number (int or Decimal)"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a boolean"]
    if not isinstance(value, str):
        return [f"{where}: {value!r} is not a string"]
    if kind == "DateTime":
        ok = DATETIME.fullmatch(value) is not None and len(value) <= 25
        return [] if ok else [f"{where}: {value!r} is not a 2.1.1 DateTime"]
    if kind in PATTERNS:
        ok = PATTERNS[kind].fullmatch(value) is not None
        return [] if ok else [f"{where}: {value!r} is not a 2.1.1 {kind} (six decimals)"]
    if kind == "URL":
        return [] if len(value) <= 255 else [f"{where}: URL longer than 255"]
    match = STRING.fullmatch(kind)
    if match and len(value) > int(match.group(1)):
        return [f"{where}: longer than {match.group(1)}"]
    return []
