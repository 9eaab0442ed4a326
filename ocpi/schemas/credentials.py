"""Credentials and CredentialsRole."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ocpi.schemas.common import BusinessDetails, CiString2, CiString3, OcpiModel

Role = Literal["CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"]


class CredentialsRole(OcpiModel):
    role: Role
    business_details: BusinessDetails
    party_id: CiString3
    country_code: CiString2


class Credentials(OcpiModel):
    token: Annotated[str, Field(min_length=1, max_length=64)]
    url: Annotated[str, Field(min_length=1, max_length=255)]
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]


class Endpoint(OcpiModel):
    identifier: str
    role: Literal["SENDER", "RECEIVER"]
    url: str


class VersionDetails(OcpiModel):
    version: str
    endpoints: list[Endpoint]
