"""Shared OCPI classes: DisplayText, Image, BusinessDetails, and the base model settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from kernel.timeutil import ensure_utc, format_rfc3339


class OcpiModel(BaseModel):
    """Unknown fields are kept (a newer peer's extras are stored, not lost)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


CiString2 = Annotated[str, Field(min_length=2, max_length=2)]
CiString3 = Annotated[str, Field(min_length=3, max_length=3)]


class DisplayText(OcpiModel):
    language: Annotated[str, Field(min_length=2, max_length=2)]
    text: Annotated[str, Field(max_length=512)]


class Image(OcpiModel):
    url: str
    category: str
    type: str
    thumbnail: str | None = None
    width: int | None = None
    height: int | None = None


class BusinessDetails(OcpiModel):
    name: Annotated[str, Field(max_length=100)]
    website: str | None = None
    logo: Image | None = None


class Timestamped(OcpiModel):
    last_updated: datetime

    @field_validator("last_updated")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            from datetime import UTC

            value = value.replace(tzinfo=UTC)
        return ensure_utc(value)

    @field_serializer("last_updated", when_used="json")
    def _wire(self, value: datetime) -> str:
        """An OCPI DateTime (string(25): ``2026-03-01T08:00:00.123Z``), never microseconds."""
        return format_rfc3339(value)
