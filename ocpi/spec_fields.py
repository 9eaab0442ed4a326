"""The properties of the OCPI 2.2.1 objects the hub renders from stored data, nested objects included, and
:func:`spec_only`, which keeps exactly those: what the hub serves and pushes is exactly OCPI (issue 13).

Imports keep fields OCPI does not have (an operator's note, an EVSE ``floor``, a price component's cost
center: they stay in ``data``), so the Location, EVSE, Connector, Tariff and CDR objects are projected onto
the spec's properties when they leave the hub. The table is the spec's (mod_locations, mod_tariffs,
mod_cdrs, mod_sessions, types; release-2.2.1-bugfixes), as extracted in ``tests/fixtures/ocpi-221-fields``:
per object, its properties, ``name:Object`` for one whose values are that object (or a list of them),
``name:DateTime`` for a timestamp.
"""

from __future__ import annotations

import re
from typing import Any

from kernel.timeutil import format_rfc3339, parse_datetime

DATE_TIME = "DateTime"
OCPI_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?")
"""types.asciidoc: string(25), UTC, the ``Z`` optional, fractional seconds allowed."""

_TABLE: dict[str, str] = {
    "AdditionalGeoLocation": "latitude longitude name:DisplayText",
    "BusinessDetails": "logo:Image name website",
    "CDR": (
        "auth_method authorization_reference cdr_location:CdrLocation cdr_token:CdrToken "
        "charging_periods:ChargingPeriod country_code credit credit_reference_id currency "
        "end_date_time:DateTime home_charging_compensation id invoice_reference_id last_updated:DateTime "
        "meter_id party_id remark session_id signed_data:SignedData start_date_time:DateTime tariffs:Tariff "
        "total_cost:Price total_energy total_energy_cost:Price total_fixed_cost:Price "
        "total_parking_cost:Price total_parking_time total_reservation_cost:Price total_time "
        "total_time_cost:Price"
    ),
    "CdrDimension": "type volume",
    "CdrLocation": (
        "address city connector_format connector_id connector_power_type connector_standard "
        "coordinates:GeoLocation country evse_id evse_uid id name postal_code state"
    ),
    "CdrToken": "contract_id country_code party_id type uid",
    "ChargingPeriod": "dimensions:CdrDimension start_date_time:DateTime tariff_id",
    "Connector": (
        "format id last_updated:DateTime max_amperage max_electric_power max_voltage power_type standard "
        "tariff_ids terms_and_conditions"
    ),
    "DisplayText": "language text",
    "EVSE": (
        "capabilities connectors:Connector coordinates:GeoLocation directions:DisplayText evse_id floor_level "
        "images:Image last_updated:DateTime parking_restrictions physical_reference status "
        "status_schedule:StatusSchedule uid"
    ),
    "EnergyMix": (
        "energy_product_name energy_sources:EnergySource environ_impact:EnvironmentalImpact is_green_energy "
        "supplier_name"
    ),
    "EnergySource": "percentage source",
    "EnvironmentalImpact": "amount category",
    "ExceptionalPeriod": "period_begin:DateTime period_end:DateTime",
    "GeoLocation": "latitude longitude",
    "Hours": (
        "exceptional_closings:ExceptionalPeriod exceptional_openings:ExceptionalPeriod "
        "regular_hours:RegularHours twentyfourseven"
    ),
    "Image": "category height thumbnail type url width",
    "Location": (
        "address charging_when_closed city coordinates:GeoLocation country country_code "
        "directions:DisplayText energy_mix:EnergyMix evses:EVSE facilities id images:Image "
        "last_updated:DateTime name opening_times:Hours operator:BusinessDetails owner:BusinessDetails "
        "parking_type party_id postal_code publish publish_allowed_to:PublishTokenType "
        "related_locations:AdditionalGeoLocation state suboperator:BusinessDetails time_zone"
    ),
    "Price": "excl_vat incl_vat",
    "PriceComponent": "price step_size type vat",
    "PublishTokenType": "group_id issuer type uid visual_number",
    "RegularHours": "period_begin period_end weekday",
    "Session": (
        "auth_method authorization_reference cdr_token:CdrToken charging_periods:ChargingPeriod connector_id "
        "country_code currency end_date_time:DateTime evse_uid id kwh last_updated:DateTime location_id "
        "meter_id party_id start_date_time:DateTime status total_cost:Price"
    ),
    "SignedData": "encoding_method encoding_method_version public_key signed_values:SignedValue url",
    "SignedValue": "nature plain_data signed_data",
    "StatusSchedule": "period_begin:DateTime period_end:DateTime status",
    "Tariff": (
        "country_code currency elements:TariffElement end_date_time:DateTime energy_mix:EnergyMix id "
        "last_updated:DateTime max_price:Price min_price:Price party_id start_date_time:DateTime "
        "tariff_alt_text:DisplayText tariff_alt_url type"
    ),
    "TariffElement": "price_components:PriceComponent restrictions:TariffRestrictions",
    "TariffRestrictions": (
        "day_of_week end_date end_time max_current max_duration max_kwh max_power min_current min_duration "
        "min_kwh min_power reservation start_date start_time"
    ),
}

SPEC_OBJECTS: dict[str, dict[str, str | None]] = {
    name: {field.partition(":")[0]: (field.partition(":")[2] or None) for field in fields.split()}
    for name, fields in _TABLE.items()
}
"""Object -> {property -> the object its values are (or ``DateTime``), or None for another primitive, an enum
or a list of them}."""


def spec_only(value: Any, name: str) -> Any:
    """``value`` as the OCPI 2.2.1 ``name`` object (a list of them when a list): only the spec's properties,
    nested objects likewise, a DateTime given with an offset (``+01:00``) or in microseconds written as OCPI's
    UTC form; anything else (a scalar) as it is."""
    if isinstance(value, list):
        return [spec_only(item, name) for item in value]
    if name == DATE_TIME:
        return _date_time(value)
    if not isinstance(value, dict):
        return value
    fields = SPEC_OBJECTS[name]
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in fields:
            continue
        nested = fields[key]
        out[key] = item if nested is None else spec_only(item, nested)
    return out


def _date_time(value: Any) -> Any:
    """An OCPI DateTime: kept when it is one already, else (an offset, microseconds) the same instant in UTC;
    what does not parse stays as it is."""
    if not isinstance(value, str) or (len(value) <= 25 and OCPI_DATE_TIME.fullmatch(value)):
        return value
    try:
        return format_rfc3339(parse_datetime(value))
    except ValueError:
        return value
