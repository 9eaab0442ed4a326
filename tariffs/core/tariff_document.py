"""The OCPI 2.2.1 tariff as a typed document (pydantic 2), and the CDR-side types it prices; exact Decimals.

These are the *wire* types: they validate what a CPO sends (Tariff, TariffElement, PriceComponent,
TariffRestrictions) and what a CDR/Session carries (ChargingPeriod, CdrDimension, Price). They are lenient in
the ways real partners need: extra fields are kept and ignored, enum values sent in lower case are accepted
(with a warning in the log). Numbers are :class:`decimal.Decimal`; never parse OCPI JSON with floats, use
:func:`tariffs.core.tariff_json.loads` (``parse_float=Decimal``).

The pricing hot path never touches these models: :func:`tariffs.core.compiled_tariff.compile_tariff` turns a
Tariff into plain slotted objects once.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kernel.domain._fields import http_url, one_of, spelled_as
from kernel.domain.locations import ENERGY_SOURCES, ENVIRONMENTAL_IMPACTS
from kernel.money import UNIT_PRICE_PLACES, MoneyError, has_unit_price_places, normalize_currency
from kernel.timeutil import ensure_utc, format_rfc3339, parse_datetime

log = logging.getLogger(__name__)

_TIME_RE = re.compile(r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")
_DATE_RE = re.compile(r"^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")


def _invalid(reason: str) -> PydanticCustomError:
    """A validation error whose message is ``reason`` as is (no "Value error, " prefix)."""
    return PydanticCustomError("invalid_tariff", "{reason}", {"reason": reason})


class _OcpiEnum(StrEnum):
    """String enum accepting lower-cased values (logged), as some partners send them."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            upper = value.strip().upper()
            if upper in cls.__members__:
                log.warning("OCPI %s value %r is not upper case; accepted as %s", cls.__name__, value, upper)
                return cls[upper]
        return None


class TariffDimensionType(_OcpiEnum):
    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class CdrDimensionType(_OcpiEnum):
    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


class DayOfWeek(_OcpiEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def iso_index(self) -> int:
        """0 = Monday ... 6 = Sunday, as :meth:`datetime.weekday`."""
        return list(DayOfWeek).index(self)


class ReservationRestrictionType(_OcpiEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class TariffType(_OcpiEnum):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, use_enum_values=False)


QUANTITY_LIMIT = Decimal(10) ** 9
"""Largest price or volume the engine takes: price x volume must stay exact within Decimal's 28 digits."""


def _quantity(value: Decimal) -> Decimal:
    """A price or volume the engine can compute with: finite, below a billion, at most 30 decimals."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or abs(value) >= QUANTITY_LIMIT:
        raise ValueError(f"{value} is out of range (finite, below {QUANTITY_LIMIT:,})")
    if exponent < -30 and value != round(value, 30):
        raise ValueError(f"{value} has more than 30 decimals")
    return value


def _unit_price(value: Decimal) -> Decimal:
    """A price as OCPI writes numbers: at most 4 decimals (:data:`kernel.money.UNIT_PRICE_PLACES`)."""
    if not has_unit_price_places(value):
        raise _invalid(
            f"{value} has more than {UNIT_PRICE_PLACES} decimals (an OCPI number has {UNIT_PRICE_PLACES})"
        )
    return value


def _utc(value: Any) -> Any:
    if isinstance(value, str):
        return parse_datetime(value)
    if isinstance(value, datetime):
        return ensure_utc(value) if value.tzinfo else value.replace(tzinfo=UTC)
    return value


class Price(_Model):
    """OCPI Price: an amount excluding VAT and (optionally) including VAT."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


class DisplayText(_Model):
    language: str = Field(pattern=r"^[A-Za-z]{2}$")  # string(2), ISO 639-1
    text: str = Field(max_length=512)


class PriceComponent(_Model):
    type: TariffDimensionType
    price: Decimal
    vat: Decimal | None = None
    step_size: int = Field(default=1, ge=0)

    @field_validator("price")
    @classmethod
    def _price(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise _invalid(f"price must not be negative, got {value}")
        return _unit_price(_quantity(value))

    @field_validator("vat")
    @classmethod
    def _vat(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not 0 <= value <= 100:
            raise _invalid(f"vat is a percentage in [0, 100], got {value}")
        return value if value is None else _unit_price(value)

    @model_validator(mode="after")
    def _step(self) -> PriceComponent:
        # The quantity is billed in step_size blocks; FLAT is billed once, its step_size is not used (the OCPI
        # 2.2.1 example tariff_5_free_of_charge.json sends 0 there).
        if self.step_size < 1 and self.type != TariffDimensionType.FLAT:
            raise _invalid(
                f"step_size must be at least 1 for {self.type.value} components, got {self.step_size}"
            )
        return self


# Restriction pairs (lower, upper): the element applies from the lower (inclusive) to the upper (exclusive) bound,
# so a lower bound at or above the upper one can never match.
_RESTRICTION_PAIRS = (
    ("min_kwh", "max_kwh"),
    ("min_current", "max_current"),
    ("min_power", "max_power"),
    ("min_duration", "max_duration"),
    ("start_date", "end_date"),
)


class TariffRestrictions(_Model):
    start_time: str | None = None
    end_time: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: list[DayOfWeek] = Field(default_factory=list)
    reservation: ReservationRestrictionType | None = None

    @field_validator("start_time", "end_time")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not _TIME_RE.match(value):
            raise ValueError(f"time of day must be HH:MM (24h, leading zeros), got {value!r}")
        return value

    @field_validator("start_date", "end_date")
    @classmethod
    def _yyyymmdd(cls, value: str | None) -> str | None:
        if value is not None and not _DATE_RE.match(value):
            raise ValueError(f"date must be YYYY-MM-DD, got {value!r}")
        return value

    @field_validator("day_of_week", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _satisfiable(self) -> TariffRestrictions:
        for lo, hi in _RESTRICTION_PAIRS:
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a >= b:
                raise _invalid(f"{lo} ({a}) must be below {hi} ({b}): the restriction could never match")
        return self


_RESERVATION_DIMENSIONS = (TariffDimensionType.FLAT, TariffDimensionType.TIME)


class TariffElement(_Model):
    price_components: list[PriceComponent] = Field(min_length=1)
    restrictions: TariffRestrictions | None = None

    @model_validator(mode="after")
    def _reservation_dimensions(self) -> TariffElement:
        if self.restrictions is not None and self.restrictions.reservation is not None:
            for j, pc in enumerate(self.price_components):
                if pc.type not in _RESERVATION_DIMENSIONS:
                    raise _invalid(
                        f"price_components[{j}].type {pc.type.value}: a reservation element can only have "
                        "FLAT and TIME components"
                    )
        return self


class EnergySource(_Model):
    source: Annotated[
        str, BeforeValidator(spelled_as(ENERGY_SOURCES)), AfterValidator(one_of(ENERGY_SOURCES))
    ]
    percentage: Decimal


class EnvironmentalImpact(_Model):
    category: Annotated[
        str, BeforeValidator(spelled_as(ENVIRONMENTAL_IMPACTS)), AfterValidator(one_of(ENVIRONMENTAL_IMPACTS))
    ]
    amount: Decimal


class EnergyMix(_Model):
    is_green_energy: bool
    energy_sources: list[EnergySource] = Field(default_factory=list)
    environ_impact: list[EnvironmentalImpact] = Field(default_factory=list)
    supplier_name: str | None = Field(default=None, max_length=64)
    energy_product_name: str | None = Field(default=None, max_length=64)


class Tariff(_Model):
    """OCPI 2.2.1 Tariff object."""

    country_code: str = Field(min_length=2, max_length=2)
    party_id: str = Field(min_length=3, max_length=3)
    id: str = Field(min_length=1, max_length=36)
    currency: str
    type: TariffType | None = None
    tariff_alt_text: list[DisplayText] = Field(default_factory=list)
    tariff_alt_url: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: list[TariffElement] = Field(min_length=1)
    energy_mix: EnergyMix | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    last_updated: datetime

    @field_validator("start_date_time", "end_date_time", "last_updated", mode="before")
    @classmethod
    def _dt(cls, value: Any) -> Any:
        return _utc(value)

    @field_validator("tariff_alt_url")
    @classmethod
    def _alt_url(cls, value: str | None) -> str | None:
        try:
            return http_url(value)
        except ValueError as exc:
            raise _invalid(str(exc)) from None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise _invalid(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self) -> Tariff:
        for name in ("min_price", "max_price"):
            bound: Price | None = getattr(self, name)
            if bound is None:
                continue
            for part in ("excl_vat", "incl_vat"):
                value = getattr(bound, part)
                if value is not None and value < 0:
                    raise _invalid(f"{name}.{part} must not be negative, got {value}")
                if value is not None and not has_unit_price_places(value):
                    raise _invalid(f"{name}.{part} {value} has more than {UNIT_PRICE_PLACES} decimals")
        if self.min_price is not None and self.max_price is not None:
            for part in ("excl_vat", "incl_vat"):
                lo, hi = getattr(self.min_price, part), getattr(self.max_price, part)
                if lo is not None and hi is not None and lo > hi:
                    raise _invalid(f"min_price.{part} ({lo}) is above max_price.{part} ({hi})")
        if (
            self.start_date_time is not None
            and self.end_date_time is not None
            and self.end_date_time <= self.start_date_time
        ):
            raise _invalid(
                f"end_date_time ({format_rfc3339(self.end_date_time)}) must be after start_date_time "
                f"({format_rfc3339(self.start_date_time)})"
            )
        return self

    @field_validator("tariff_alt_text", mode="before")
    @classmethod
    def _alt(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def version(self) -> str:
        """Version label used in explanations: ``start_date_time`` if set, else ``last_updated`` (RFC 3339)."""

        return format_rfc3339(self.start_date_time or self.last_updated)


class CdrDimension(_Model):
    type: CdrDimensionType
    volume: Decimal

    @field_validator("volume")
    @classmethod
    def _volume(cls, value: Decimal) -> Decimal:
        return _quantity(value)


class ChargingPeriod(_Model):
    """OCPI ChargingPeriod: starts at ``start_date_time``, ends when the next one starts (or the session ends)."""

    start_date_time: datetime
    dimensions: list[CdrDimension] = Field(min_length=1)
    tariff_id: str | None = None

    @field_validator("start_date_time", mode="before")
    @classmethod
    def _dt(cls, value: Any) -> Any:
        return _utc(value)

    def volume(self, kind: CdrDimensionType) -> Decimal | None:
        """The volume of the first dimension of ``kind``, or None."""
        for dim in self.dimensions:
            if dim.type == kind:
                return dim.volume
        return None
