"""Token, its PATCH, LocationReferences and AuthorizationInfo."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from ocpi.schemas.common import CiString2, CiString3, DisplayText, OcpiModel, Timestamped

TokenType = Literal["AD_HOC_USER", "APP_USER", "OTHER", "RFID"]
WhitelistType = Literal["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"]
AllowedType = Literal["ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"]


class EnergyContract(OcpiModel):
    supplier_name: Annotated[str, Field(max_length=64)]
    contract_id: Annotated[str, Field(max_length=64)] | None = None


class Token(Timestamped):
    country_code: CiString2
    party_id: CiString3
    uid: Annotated[str, Field(min_length=1, max_length=36)]
    type: TokenType
    contract_id: Annotated[str, Field(min_length=1, max_length=36)]
    visual_number: Annotated[str, Field(max_length=64)] | None = None
    issuer: Annotated[str, Field(max_length=64)]
    group_id: Annotated[str, Field(max_length=36)] | None = None
    valid: bool
    whitelist: WhitelistType
    language: Annotated[str, Field(min_length=2, max_length=2)] | None = None
    default_profile_type: str | None = None
    energy_contract: EnergyContract | None = None


class TokenPatch(OcpiModel):
    """Every field optional but ``last_updated`` (required in a PATCH)."""

    last_updated: datetime
    country_code: CiString2 | None = None
    party_id: CiString3 | None = None
    uid: str | None = None
    type: TokenType | None = None
    contract_id: str | None = None
    visual_number: str | None = None
    issuer: str | None = None
    group_id: str | None = None
    valid: bool | None = None
    whitelist: WhitelistType | None = None
    language: str | None = None


class LocationReferences(OcpiModel):
    location_id: Annotated[str, Field(max_length=36)]
    evse_uids: list[str] | None = None


class AuthorizationInfo(OcpiModel):
    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: str | None = None
    info: DisplayText | None = None
