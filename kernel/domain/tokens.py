"""OCPI 2.2.1 Token as accepted by ``evhub tokens add`` and the OCPI tokens module."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kernel.domain._fields import one_of, upper
from kernel.models.tokens import TOKEN_TYPES, WHITELIST_TYPES


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    country_code: str = Field(min_length=2, max_length=2)
    party_id: str = Field(min_length=3, max_length=3)
    uid: str = Field(min_length=1, max_length=36)
    type: str = "RFID"
    contract_id: str = Field(min_length=1, max_length=36)
    visual_number: str | None = Field(default=None, max_length=64)
    issuer: str = Field(min_length=1, max_length=64)
    valid: bool = True
    whitelist: str = "ALLOWED"
    language: str | None = Field(default=None, min_length=2, max_length=2)
    last_updated: datetime

    _up = field_validator("country_code", "party_id", "type", "whitelist", mode="before")(upper)

    _type = field_validator("type")(one_of(TOKEN_TYPES))
    _whitelist = field_validator("whitelist")(one_of(WHITELIST_TYPES))
