"""ChargingProfile and SetChargingProfile (ChargingProfiles module)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ocpi.schemas.common import OcpiModel


class ChargingProfilePeriod(OcpiModel):
    start_period: int = Field(ge=0)
    limit: float = Field(ge=0)


class ChargingProfile(OcpiModel):
    start_date_time: datetime | None = None
    duration: int | None = Field(default=None, ge=0)
    charging_rate_unit: Literal["W", "A"]
    min_charging_rate: float | None = None
    charging_profile_period: list[ChargingProfilePeriod] | None = None


class SetChargingProfile(OcpiModel):
    charging_profile: ChargingProfile
    response_url: str
