"""Grid-load dynamic pricing, pure: rules that derive tariff versions from a base tariff, and a state machine.

* :class:`GridRule`: "while load >= 80 %: ENERGY +0.10/kWh" (:meth:`GridRule.above`) or "while load < 30 %:
  all prices x 0.8" (:meth:`GridRule.below`); an adjustment multiplies then adds, per dimension.
* :func:`apply_rule` derives a new tariff *version* (same id, ``start_date_time`` = when it takes effect).
* :func:`price_changes` runs the state machine over a load time series: the first rule (list order) whose
  condition holds is active; an active rule is only left once load has moved ``hysteresis`` percentage
  points past its threshold; no change happens sooner than ``min_hold`` after the previous one. It returns
  the tariff versions to publish, which :func:`tariffs.core.engine.price_session` accepts as a version list.

No I/O, no clock: time comes only from the series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from kernel.money import round_unit_price
from kernel.timeutil import ensure_utc
from tariffs.core.tariff_document import Tariff

ABOVE = "above"
BELOW = "below"
DIMENSIONS = ("ENERGY", "TIME", "PARKING_TIME", "FLAT")
"""The OCPI price component types a rule can adjust."""
_ALL = DIMENSIONS


@dataclass(frozen=True)
class GridRule:
    """While the load (percent) is at/above (or below) ``threshold``: price = price * multiply + add[dim]."""

    name: str
    direction: str  # ABOVE (load >= threshold) or BELOW (load < threshold)
    threshold: Decimal
    add: Mapping[str, Decimal] = field(default_factory=dict)  # per dimension, per unit
    multiply: Decimal = Decimal(1)
    dimensions: tuple[str, ...] = _ALL  # dimensions the multiplier applies to

    @classmethod
    def above(
        cls,
        threshold: Decimal | int | str,
        *,
        name: str | None = None,
        multiply: Decimal | str = "1",
        dimensions: Sequence[str] = _ALL,
        **add: Decimal | str,
    ) -> GridRule:
        """E.g. ``GridRule.above(80, energy="0.10")``: while load >= 80 %, ENERGY +0.10 per kWh."""
        return cls(
            name or f"load>={threshold}",
            ABOVE,
            Decimal(threshold),
            {k.upper(): Decimal(v) for k, v in add.items()},
            Decimal(multiply),
            tuple(dimensions),
        )

    @classmethod
    def below(
        cls,
        threshold: Decimal | int | str,
        *,
        name: str | None = None,
        multiply: Decimal | str = "1",
        dimensions: Sequence[str] = _ALL,
        **add: Decimal | str,
    ) -> GridRule:
        """E.g. ``GridRule.below(30, multiply="0.8")``: while load < 30 %, all prices x 0.8."""
        return cls(
            name or f"load<{threshold}",
            BELOW,
            Decimal(threshold),
            {k.upper(): Decimal(v) for k, v in add.items()},
            Decimal(multiply),
            tuple(dimensions),
        )

    def enters(self, load: Decimal) -> bool:
        return load >= self.threshold if self.direction == ABOVE else load < self.threshold

    def holds(self, load: Decimal, hysteresis: Decimal) -> bool:
        """Still active (once active) — the exit threshold is shifted by ``hysteresis``."""
        if self.direction == ABOVE:
            return load >= self.threshold - hysteresis
        return load < self.threshold + hysteresis


def apply_rule(
    base: Tariff, rule: GridRule | None, effective_from: datetime, published_at: datetime | None = None
) -> Tariff:
    """A new version of ``base`` with ``rule`` applied (or ``base`` itself, re-dated, when ``rule`` is None),
    valid from ``effective_from``, with ``last_updated`` = ``published_at`` (when the version is stored and
    queued for partners; default ``effective_from``), never the earlier time of the sample that caused it.

    Prices are never negative and are rounded to an OCPI price's 4 decimals (:func:`kernel.money.round_unit_price`,
    ROUND_HALF_UP: what partners receive is what is charged); money is rounded only on lines.
    """
    at = ensure_utc(effective_from)
    published = ensure_utc(published_at) if published_at is not None else at
    data = base.model_copy(deep=True)
    if rule is not None:
        for element in data.elements:
            for pc in element.price_components:
                dim = pc.type.value
                price = pc.price * rule.multiply if dim in rule.dimensions else pc.price
                price += rule.add.get(dim, Decimal(0))
                pc.price = round_unit_price(max(price, Decimal(0)))
    data.start_date_time = at
    data.end_date_time = None
    data.last_updated = published
    return data


@dataclass(frozen=True)
class PriceChange:
    at: datetime
    rule: GridRule | None  # None = back to the base tariff
    load: Decimal
    tariff: Tariff


def price_changes(
    base: Tariff,
    rules: Sequence[GridRule],
    loads: Sequence[tuple[datetime, Decimal | int | str]],
    *,
    hysteresis: Decimal | int | str = 0,
    min_hold: timedelta = timedelta(0),
    initial_rule: GridRule | None = None,
) -> list[PriceChange]:
    """Run the grid state machine over ``loads`` (time, percent) and return the price changes, in order.

    The first sample always yields a change (the version in force from then on). Each change carries a new
    tariff version (``start_date_time`` = the sample time).
    """
    hyst = Decimal(hysteresis)
    out: list[PriceChange] = []
    active = initial_rule
    last_change: datetime | None = None
    for ts, raw in sorted(loads, key=lambda x: x[0]):
        at = ensure_utc(ts)
        load = Decimal(raw)
        wanted: GridRule | None = None
        for rule in rules:
            if rule is active and rule.holds(load, hyst):
                wanted = rule
                break
            if rule.enters(load):
                wanted = rule
                break
        if active is not None and wanted is None and active.holds(load, hyst):
            wanted = active
        if last_change is None:
            active, last_change = wanted, at
            out.append(PriceChange(at, wanted, load, apply_rule(base, wanted, at)))
            continue
        if wanted is not active and at - last_change >= min_hold:
            active, last_change = wanted, at
            out.append(PriceChange(at, wanted, load, apply_rule(base, wanted, at)))
    return out


def versions(changes: Sequence[PriceChange]) -> list[Tariff]:
    """The tariff versions of ``changes``, ready for :func:`tariffs.core.engine.price_session`."""
    return [c.tariff for c in changes]
