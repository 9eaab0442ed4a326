"""OCPI 2.2.1 Location / EVSE / Connector as imported by ``evhub locations import``.

Extra fields are kept (they travel on in ``data``); enum-like strings are accepted in any case and upper-cased.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kernel.domain._fields import one_of, upper
from kernel.timeutil import zone

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


class _Ocpi(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class GeoLocation(_Ocpi):
    latitude: str = Field(pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")
    longitude: str = Field(pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")


class ConnectorIn(_Ocpi):
    id: str = Field(min_length=1, max_length=36)
    standard: str = Field(max_length=32)
    format: str
    power_type: str
    max_voltage: int = Field(gt=0)
    max_amperage: int = Field(gt=0)
    max_electric_power: int | None = Field(default=None, gt=0)
    tariff_ids: list[str] = Field(default_factory=list)
    last_updated: datetime

    _up = field_validator("standard", "format", "power_type", mode="before")(upper)

    _format = field_validator("format")(one_of(CONNECTOR_FORMATS))
    _power = field_validator("power_type")(one_of(POWER_TYPES))


class EvseIn(_Ocpi):
    uid: str = Field(min_length=1, max_length=36)
    evse_id: str | None = Field(default=None, max_length=48)
    status: str = "UNKNOWN"
    capabilities: list[str] = Field(default_factory=list)
    connectors: list[ConnectorIn] = Field(min_length=1)
    physical_reference: str | None = Field(default=None, max_length=16)
    floor_level: str | None = Field(default=None, max_length=4)
    last_updated: datetime

    _up = field_validator("status", mode="before")(upper)

    _status = field_validator("status")(one_of(EVSE_STATUSES))


class LocationIn(_Ocpi):
    country_code: str = Field(min_length=2, max_length=2)
    party_id: str = Field(min_length=3, max_length=3)
    id: str = Field(min_length=1, max_length=36)
    publish: bool = True
    name: str | None = Field(default=None, max_length=255)
    address: str = Field(max_length=45)
    city: str = Field(max_length=45)
    postal_code: str | None = Field(default=None, max_length=10)
    state: str | None = Field(default=None, max_length=20)
    country: str = Field(min_length=3, max_length=3)
    coordinates: GeoLocation
    evses: list[EvseIn] = Field(default_factory=list)
    time_zone: str
    last_updated: datetime

    _up = field_validator("country_code", "party_id", "country", mode="before")(upper)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        zone(v)
        return v
