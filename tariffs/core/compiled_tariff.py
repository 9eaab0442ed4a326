"""Precompiled tariffs: a Tariff reduced once to plain slotted objects for the pricing hot path.

A :class:`CompiledTariff` keeps, per dimension (ENERGY, TIME, PARKING_TIME, FLAT), the ordered list of
candidate price components with their element's compiled restrictions, so "the first element with a component
for this dimension whose restrictions match" is a short loop with no pydantic in it. It also keeps the
validity window (``start_date_time``/``end_date_time``) used for tariff versions, and min/max price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from kernel.money import normalize_currency
from tariffs.core.restrictions import (
    RESERVATION,
    RESERVATION_EXPIRES,
    CompiledRestrictions,
    Moment,
    compile_restrictions,
)
from tariffs.core.tariff_document import Tariff

ENERGY = "ENERGY"
FLAT = "FLAT"
TIME = "TIME"
PARKING_TIME = "PARKING_TIME"
RESERVATION_TIME = "RESERVATION_TIME"  # reservation time is priced by TIME components of reservation elements

# Per priced quantity: how many base units make one priced unit (Wh per kWh, seconds per hour).
UNIT_DIVISOR = {
    ENERGY: Decimal(1000),
    TIME: Decimal(3600),
    PARKING_TIME: Decimal(3600),
    RESERVATION_TIME: Decimal(3600),
    FLAT: Decimal(1),
}


@dataclass(frozen=True, slots=True)
class Component:
    """One price component in context: which element/component it is, its price, VAT and step."""

    dimension: str  # TariffDimensionType value
    element_index: int
    component_index: int
    price: Decimal  # per kWh / per hour / per session (FLAT), excl. VAT
    vat: Decimal | None  # percent, None = no VAT applicable
    step_size: int
    restrictions: CompiledRestrictions


@dataclass(slots=True)
class CompiledTariff:
    """A Tariff ready for pricing. Build with :func:`compile_tariff`."""

    tariff_id: str
    version: str
    currency: str
    valid_from: datetime | None
    valid_to: datetime | None
    min_excl: Decimal | None
    min_incl: Decimal | None
    max_excl: Decimal | None
    max_incl: Decimal | None
    candidates: dict[str, tuple[Component, ...]] = field(default_factory=dict)
    source: Tariff | None = None

    def find(self, dimension: str, moment: Moment) -> Component | None:
        """The first component of ``dimension`` whose element's restrictions match at ``moment``.

        For reservation time the TIME components of reservation elements are searched; for an expired
        reservation the ``RESERVATION_EXPIRES`` elements take precedence over ``RESERVATION`` ones.
        """
        cands = self.candidates.get(dimension, ())
        if moment.reservation == RESERVATION_EXPIRES:
            for comp in cands:
                if comp.restrictions.reservation == RESERVATION_EXPIRES and comp.restrictions.matches(moment):
                    return comp
        for comp in cands:
            if comp.restrictions.matches(moment):
                return comp
        return None

    def all_restrictions(self) -> list[CompiledRestrictions]:
        seen: dict[int, CompiledRestrictions] = {}
        for comps in self.candidates.values():
            for c in comps:
                seen[id(c.restrictions)] = c.restrictions
        return list(seen.values())

    def valid_at(self, instant: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= instant) and (
            self.valid_to is None or instant < self.valid_to
        )


def compile_tariff(tariff: Tariff) -> CompiledTariff:
    """Compile an OCPI Tariff (validates currency, keeps element/component order)."""
    cands: dict[str, list[Component]] = {ENERGY: [], FLAT: [], TIME: [], PARKING_TIME: []}
    for ei, element in enumerate(tariff.elements):
        restr = compile_restrictions(element.restrictions)
        for ci, pc in enumerate(element.price_components):
            dim = pc.type.value
            cands[dim].append(Component(dim, ei, ci, pc.price, pc.vat, max(pc.step_size, 1), restr))
    out = CompiledTariff(
        tariff_id=tariff.id,
        version=tariff.version,
        currency=normalize_currency(tariff.currency),
        valid_from=tariff.start_date_time,
        valid_to=tariff.end_date_time,
        min_excl=tariff.min_price.excl_vat if tariff.min_price else None,
        min_incl=tariff.min_price.incl_vat if tariff.min_price else None,
        max_excl=tariff.max_price.excl_vat if tariff.max_price else None,
        max_incl=tariff.max_price.incl_vat if tariff.max_price else None,
        source=tariff,
    )
    # Reservation time is priced by TIME components; the generic TIME list already holds them, and the
    # reservation restriction keeps them apart from charging time (see restrictions.Moment.reservation).
    out.candidates = {k: tuple(v) for k, v in cands.items()}
    out.candidates[RESERVATION_TIME] = tuple(c for c in cands[TIME] if c.restrictions.reservation is not None)
    return out


__all__ = [
    "ENERGY",
    "FLAT",
    "PARKING_TIME",
    "RESERVATION",
    "RESERVATION_EXPIRES",
    "RESERVATION_TIME",
    "TIME",
    "UNIT_DIVISOR",
    "CompiledTariff",
    "Component",
    "compile_tariff",
]
