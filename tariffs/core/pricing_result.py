"""What pricing returns: the rounded cost lines, the per-period charges they are made of, step rounding, totals.

Plain data, filled in by :func:`tariffs.core.engine.price_session` and read by :mod:`tariffs.core.render`
(OCPI CDR fields and the explanation) and by rating (the CDR row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tariffs.core.charging_periods import Period
from tariffs.core.compiled_tariff import UNIT_DIVISOR
from tariffs.core.tariff_document import Price

ZERO = Decimal(0)
ONE = Decimal(1)
QUANTITY_STEP = Decimal("0.000001")  # quantities in priced units (kWh, hours) have 6 decimals

MIN_PRICE = "MIN_PRICE"
MAX_PRICE = "MAX_PRICE"


@dataclass(slots=True)
class Charge:
    """Explanation row: what one period was billed for one dimension."""

    period_index: int
    start: datetime
    end: datetime
    dimension: str  # ENERGY, TIME, PARKING_TIME, RESERVATION_TIME, FLAT
    tariff_id: str
    tariff_version: str
    element_index: int
    component_index: int
    quantity: Decimal  # used, in base units: Wh for ENERGY, seconds for time, 1 for FLAT
    step_extra: Decimal  # added by step_size rounding (base units), only on the last period of a group
    unit_price: Decimal  # per kWh / per hour / per session, excl. VAT
    vat: Decimal | None
    step_size: int
    reservation: bool = False  # a reservation FLAT fee (counts in total_reservation_cost)
    amount_excl: Decimal = ZERO  # this period's share of its rounded line
    amount_incl: Decimal = ZERO

    @property
    def billed_quantity(self) -> Decimal:
        return self.quantity + self.step_extra


@dataclass(slots=True)
class Line:
    """A rounded cost line: one tariff component over the whole session, or a min/max price adjustment."""

    kind: str  # "component", MIN_PRICE or MAX_PRICE
    dimension: str
    tariff_id: str
    tariff_version: str
    element_index: int | None
    component_index: int | None
    billed: Decimal  # billed quantity in base units: Wh, seconds, 1 (FLAT / adjustments)
    unit_price: Decimal | None
    vat: Decimal | None
    amount_excl: Decimal
    amount_incl: Decimal
    charges: list[Charge] = field(default_factory=list)

    @property
    def quantity(self) -> Decimal:
        """Billed quantity in the priced unit: kWh, hours, or 1; 6 decimals."""
        unit = UNIT_DIVISOR.get(self.dimension, ONE)
        return (self.billed / unit).quantize(QUANTITY_STEP)


@dataclass(slots=True)
class StepRounding:
    """How step_size rounded one group of quantities (ENERGY, TIME_AND_PARKING or RESERVATION)."""

    group: str  # ENERGY, TIME_AND_PARKING, RESERVATION
    dimension: str
    step_size: int
    used: Decimal  # base units
    billed: Decimal
    period_index: int


@dataclass(slots=True)
class PricingResult:
    """OCPI CDR cost fields plus the explanation of how they were obtained."""

    currency: str
    session_start: datetime
    session_end: datetime
    total_cost: Price
    total_fixed_cost: Price
    total_energy: Decimal  # kWh
    total_energy_cost: Price
    total_time: Decimal  # hours
    total_time_cost: Price
    total_parking_time: Decimal  # hours
    total_parking_cost: Price
    total_reservation_cost: Price
    lines: list[Line]
    periods: list[Period]
    period_tariffs: list[str | None]  # tariff id per period (for OCPI charging_periods)
    tariffs_used: list[tuple[str, str]]  # (tariff id, version) in order of first use
    step_roundings: list[StepRounding]

    @property
    def charges(self) -> list[Charge]:
        return [c for line in self.lines for c in line.charges]
