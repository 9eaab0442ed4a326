"""OCPI 2.2.1 Location / EVSE / Connector as imported by ``evhub locations import``.

Every field of the spec's tables (mod_locations, "Object description" and "Data types") is checked: each enum
against its values, each string against its length (a stored column's length where the hub keeps less), each
URL, DateTime and regex, nested objects included, so what the hub later serves and pushes is exactly OCPI.
The four enums the hub always took in any case (EVSE ``status``, connector ``standard``, ``format``,
``power_type``) are still re-spelled as the spec spells them; every other enum value must be given as the spec
writes it. Extra fields are kept (they travel on in ``data``, never rendered); nested DateTimes and numbers
are stored as given (a number as a JSON number).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from kernel.domain._fields import date_time_text, each_one_of, http_url, one_of, spelled_as, upper
from kernel.models.tokens import TOKEN_TYPES
from kernel.timeutil import zone

# --- the enums of mod_locations "Data types" (OCPI 2.2.1) -----------------------------------------------

EVSE_STATUSES = {
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
POWER_TYPES = {"AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"}
CONNECTOR_FORMATS = {"SOCKET", "CABLE"}
CONNECTOR_TYPES = {
    "CHADEMO",
    "CHAOJI",
    *(f"DOMESTIC_{letter}" for letter in "ABCDEFGHIJKLMNO"),
    "GBT_AC",
    "GBT_DC",
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
    "NEMA_5_20",
    "NEMA_6_30",
    "NEMA_6_50",
    "NEMA_10_30",
    "NEMA_10_50",
    "NEMA_14_30",
    "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP",
    "PANTOGRAPH_TOP_DOWN",
    "TESLA_R",
    "TESLA_S",
}
CAPABILITIES = {
    "CHARGING_PROFILE_CAPABLE",
    "CHARGING_PREFERENCES_CAPABLE",
    "CHIP_CARD_SUPPORT",
    "CONTACTLESS_CARD_SUPPORT",
    "CREDIT_CARD_PAYABLE",
    "DEBIT_CARD_PAYABLE",
    "PED_TERMINAL",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "START_SESSION_CONNECTOR_REQUIRED",
    "TOKEN_GROUP_CAPABLE",
    "UNLOCK_CAPABLE",
}
FACILITIES = {
    "HOTEL",
    "RESTAURANT",
    "CAFE",
    "MALL",
    "SUPERMARKET",
    "SPORT",
    "RECREATION_AREA",
    "NATURE",
    "MUSEUM",
    "BIKE_SHARING",
    "BUS_STOP",
    "TAXI_STAND",
    "TRAM_STOP",
    "METRO_STATION",
    "TRAIN_STATION",
    "AIRPORT",
    "PARKING_LOT",
    "CARPOOL_PARKING",
    "FUEL_STATION",
    "WIFI",
}
PARKING_TYPES = {
    "ALONG_MOTORWAY",
    "PARKING_GARAGE",
    "PARKING_LOT",
    "ON_DRIVEWAY",
    "ON_STREET",
    "UNDERGROUND_GARAGE",
}
PARKING_RESTRICTIONS = {"EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"}
IMAGE_CATEGORIES = {"CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER"}
ENERGY_SOURCES = {"NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER"}
ENVIRONMENTAL_IMPACTS = {"NUCLEAR_WASTE", "CARBON_DIOXIDE"}

_HOUR_MINUTE = r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$"


def _number(value: Any) -> Any:
    """An OCPI number with at most 4 decimals, kept as given (a Decimal from evhub's JSON reader, an int...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"{value!r} is not a number")
    exact = Decimal(str(value))
    if not exact.is_finite() or exact != round(exact, 4):
        raise ValueError(f"{value} is not a number with at most 4 decimals")
    return value


def _json_number(value: Any) -> Any:
    """A Decimal stored as a JSON number (not pydantic's string): an int when whole, else the float of its at
    most 4 decimals (which prints back as the same digits)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


Url = Annotated[str, AfterValidator(http_url)]
DateTimeText = Annotated[str, AfterValidator(date_time_text)]
Number = Annotated[Any, AfterValidator(_number), PlainSerializer(_json_number, when_used="json")]
Status = Annotated[str, BeforeValidator(spelled_as(EVSE_STATUSES)), AfterValidator(one_of(EVSE_STATUSES))]


class _Ocpi(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class GeoLocation(_Ocpi):
    latitude: str = Field(pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")
    longitude: str = Field(pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")


class DisplayText(_Ocpi):
    language: str = Field(pattern=r"^[A-Za-z]{2}$")  # string(2), ISO 639-1
    text: str = Field(max_length=512)


class AdditionalGeoLocation(GeoLocation):
    name: DisplayText | None = None


class Image(_Ocpi):
    url: Url
    thumbnail: Url | None = None
    category: str
    type: str = Field(min_length=1, max_length=4)
    width: int | None = Field(default=None, ge=0, le=99999)  # int(5)
    height: int | None = Field(default=None, ge=0, le=99999)

    _category = field_validator("category")(one_of(IMAGE_CATEGORIES))


class BusinessDetails(_Ocpi):
    name: str = Field(max_length=100)
    website: Url | None = None
    logo: Image | None = None


class RegularHours(_Ocpi):
    weekday: int = Field(ge=1, le=7)
    period_begin: str = Field(pattern=_HOUR_MINUTE)
    period_end: str = Field(pattern=_HOUR_MINUTE)


class ExceptionalPeriod(_Ocpi):
    period_begin: DateTimeText
    period_end: DateTimeText


class Hours(_Ocpi):
    twentyfourseven: bool
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None


class EnergySource(_Ocpi):
    source: str
    percentage: Number

    _source = field_validator("source")(one_of(ENERGY_SOURCES))


class EnvironmentalImpact(_Ocpi):
    category: str
    amount: Number

    _category = field_validator("category")(one_of(ENVIRONMENTAL_IMPACTS))


class EnergyMix(_Ocpi):
    is_green_energy: bool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: str | None = Field(default=None, max_length=64)
    energy_product_name: str | None = Field(default=None, max_length=64)


class PublishTokenType(_Ocpi):
    uid: str | None = Field(default=None, max_length=36)
    type: str | None = None
    visual_number: str | None = Field(default=None, max_length=64)
    issuer: str | None = Field(default=None, max_length=64)
    group_id: str | None = Field(default=None, max_length=36)

    _type = field_validator("type")(one_of(TOKEN_TYPES))


class StatusSchedule(_Ocpi):
    period_begin: DateTimeText
    period_end: DateTimeText | None = None
    status: Status


class ConnectorIn(_Ocpi):
    id: str = Field(min_length=1, max_length=36)
    standard: str
    format: str
    power_type: str
    max_voltage: int = Field(gt=0)
    max_amperage: int = Field(gt=0)
    max_electric_power: int | None = Field(default=None, gt=0)
    tariff_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] = Field(default_factory=list)
    terms_and_conditions: Url | None = None
    last_updated: datetime

    _up = field_validator("format", "power_type", mode="before")(upper)
    _spell = field_validator("standard", mode="before")(spelled_as(CONNECTOR_TYPES))

    _standard = field_validator("standard")(one_of(CONNECTOR_TYPES))
    _format = field_validator("format")(one_of(CONNECTOR_FORMATS))
    _power = field_validator("power_type")(one_of(POWER_TYPES))


class EvseIn(_Ocpi):
    uid: str = Field(min_length=1, max_length=36)
    evse_id: str | None = Field(default=None, max_length=48)
    status: Status = "UNKNOWN"
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[str] = Field(default_factory=list)
    connectors: list[ConnectorIn] = Field(min_length=1)
    floor_level: str | None = Field(default=None, max_length=4)
    coordinates: GeoLocation | None = None
    physical_reference: str | None = Field(default=None, max_length=16)
    directions: list[DisplayText] | None = None
    parking_restrictions: list[str] | None = None
    images: list[Image] | None = None
    last_updated: datetime

    _capabilities = field_validator("capabilities")(each_one_of(CAPABILITIES))
    _restrictions = field_validator("parking_restrictions")(each_one_of(PARKING_RESTRICTIONS))


class LocationIn(_Ocpi):
    country_code: str = Field(min_length=2, max_length=2)
    party_id: str = Field(min_length=3, max_length=3)
    id: str = Field(min_length=1, max_length=36)
    publish: bool = True
    publish_allowed_to: list[PublishTokenType] | None = None
    name: str | None = Field(default=None, max_length=255)
    address: str = Field(max_length=45)  # string(255) in OCPI; the column keeps 45
    city: str = Field(max_length=45)
    postal_code: str | None = Field(default=None, max_length=10)
    state: str | None = Field(default=None, max_length=45)
    country: str = Field(min_length=3, max_length=3)
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: str | None = None
    evses: list[EvseIn] = Field(default_factory=list)
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[str] | None = None
    time_zone: str = Field(max_length=64)  # string(255) in OCPI; the column keeps 64
    opening_times: Hours | None = None
    charging_when_closed: bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: datetime

    _up = field_validator("country_code", "party_id", "country", mode="before")(upper)
    _parking = field_validator("parking_type")(one_of(PARKING_TYPES))
    _facilities = field_validator("facilities")(each_one_of(FACILITIES))

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        zone(v)
        return v
