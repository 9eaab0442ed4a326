"""The pricing engine: OCPI 2.2.1 tariff semantics applied to a session's charging periods.

``price_session(tariffs, periods, session_start, session_end, time_zone)`` is pure (no I/O, no clock). Steps:

1. Tariff versions: each tariff is valid from ``start_date_time`` (open if absent) until ``end_date_time``;
   at any instant the valid version with the latest start wins. Periods are cut at version boundaries and at
   every restriction boundary (:func:`tariffs.core.charging_periods.cut_for_tariffs`).
2. Per period and dimension (ENERGY, TIME = charging time, PARKING_TIME, reservation time) the first
   element, in list order, with a component of that dimension whose restrictions match at the period start is
   used; none matching means that quantity is free.
3. FLAT is charged once per session: from the first matching element at the session start (a reservation
   FLAT once for the reservation, from the reservation elements).
4. step_size (OCPI CDR module): once per session for ENERGY (on total billed Wh), once for TIME and
   PARKING_TIME combined (on the total of whichever of the two the chronologically last billed time period
   has, so parking when charging is followed by paid parking), once for reservation time. The step of the
   component billed in that last period is used, and the extra quantity is billed in that last period.
5. Lines: quantities of the same (version, element, component) are summed into one line, priced exactly and
   rounded once with :func:`kernel.money.round_amount` (excl. VAT, and incl. VAT from the exact amount with
   the component's VAT). Totals are sums of rounded lines. Per-period amounts in the explanation are the
   line amounts split with :func:`kernel.money.allocate`, so periods add up to lines add up to totals.
6. min_price / max_price (of the version valid at the session start) clamp the total excl. VAT and the
   total incl. VAT independently, each as an explicit adjustment line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from kernel.money import allocate, rounder
from kernel.timeutil import ensure_utc, zone
from tariffs.core.charging_periods import Period, cut_for_tariffs, periods_from_ocpi, seconds_between
from tariffs.core.compiled_tariff import (
    ENERGY,
    FLAT,
    PARKING_TIME,
    RESERVATION_TIME,
    TIME,
    UNIT_DIVISOR,
    CompiledTariff,
    compile_tariff,
)
from tariffs.core.restrictions import RESERVATION, RESERVATION_EXPIRES, Moment
from tariffs.core.tariff_document import ChargingPeriod, Price, Tariff

ZERO = Decimal(0)
ONE = Decimal(1)
_H = Decimal(3600)
_QTY = Decimal("0.000001")

MIN_PRICE = "MIN_PRICE"
MAX_PRICE = "MAX_PRICE"


class PricingError(ValueError):
    """The inputs cannot be priced (no tariff, mixed currencies, periods outside the session...)."""


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
        return (self.billed / unit).quantize(_QTY)


@dataclass(slots=True)
class StepRounding:
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


def _price(excl: Decimal, incl: Decimal) -> Price:
    return Price.model_construct(excl_vat=excl, incl_vat=incl)


TariffInput = Tariff | CompiledTariff | Sequence[Tariff | CompiledTariff]


def compile_versions(tariffs: TariffInput) -> list[CompiledTariff]:
    """Normalize one tariff or a list of tariff versions to compiled versions sorted by validity start."""
    items = [tariffs] if isinstance(tariffs, Tariff | CompiledTariff) else list(tariffs)
    if not items:
        raise PricingError("no tariff given")
    out = [t if isinstance(t, CompiledTariff) else compile_tariff(t) for t in items]
    currencies = {t.currency for t in out}
    if len(currencies) != 1:
        raise PricingError(f"tariff versions mix currencies {sorted(currencies)}")
    out.sort(key=lambda t: (t.valid_from is not None, t.valid_from or datetime.min))
    return out


def version_at(versions: Sequence[CompiledTariff], instant: datetime) -> CompiledTariff | None:
    """The version valid at ``instant``: among valid ones, the one with the latest ``start_date_time``."""
    best = None
    for v in versions:  # sorted by valid_from, so the last valid one wins
        if v.valid_at(instant):
            best = v
    return best


def _ceil_to(q: Decimal, step: int) -> Decimal:
    s = Decimal(step)
    return (q / s).to_integral_value(rounding=ROUND_CEILING) * s


def price_session(
    tariffs: TariffInput,
    periods: Sequence[Period] | Sequence[ChargingPeriod],
    session_start: datetime,
    session_end: datetime,
    time_zone: str,
    *,
    precut: bool = False,
) -> PricingResult:
    """Price one session. See the module docstring for the rules.

    ``tariffs``: a Tariff, a CompiledTariff, or a list of versions (each valid from its start_date_time).
    ``periods``: :class:`tariffs.core.charging_periods.Period` objects or OCPI ChargingPeriods, chronological.
    ``time_zone``: the location's IANA zone (restrictions are local). ``precut=True`` skips cutting periods at
    tariff boundaries (only when the caller already did, e.g. :func:`periods_from_meter_values`).
    """
    versions = compile_versions(tariffs)
    currency = versions[0].currency
    round_amount = rounder(currency)  # kernel.money's rule, fixed for this call
    start, end = ensure_utc(session_start), ensure_utc(session_end)
    if end < start:
        raise PricingError("session ends before it starts")
    tz = zone(time_zone)
    plist: list[Period]
    if periods and isinstance(periods[0], ChargingPeriod):
        plist = periods_from_ocpi(periods, end)  # type: ignore[arg-type]
    else:
        plist = list(periods)  # type: ignore[arg-type]
    if not precut:
        plist = cut_for_tariffs(plist, versions, start, end, time_zone)

    # ---- 1. find the component per period and dimension
    charges: list[Charge] = []
    period_tariffs: list[str | None] = []
    used: dict[tuple[str, str], None] = {}
    energy_before = ZERO
    first_session_period: Period | None = None
    first_res_period: Period | None = None
    any_expired = False
    for idx, p in enumerate(plist):
        v = version_at(versions, p.start)
        period_tariffs.append(v.tariff_id if v else None)
        is_res = p.is_reservation
        if is_res:
            any_expired = any_expired or p.expired
            if first_res_period is None:
                first_res_period = p
        elif first_session_period is None:
            first_session_period = p
        if v is None:
            energy_before += p.energy_wh
            continue
        m = Moment(
            local=p.start.astimezone(tz),
            energy_wh=energy_before,
            elapsed_s=seconds_between(start, p.start),
            power_kw=p.power_kw,
            current_a=p.current_a,
            reservation=(RESERVATION_EXPIRES if p.expired else RESERVATION) if is_res else None,
        )
        if is_res:
            wanted = ((RESERVATION_TIME, p.reservation_s),)
        else:
            wanted = ((ENERGY, p.energy_wh), (TIME, p.time_s), (PARKING_TIME, p.parking_s))
        for dim, qty in wanted:
            if not qty:
                continue
            comp = v.find(dim, m)
            if comp is None:
                continue
            used.setdefault((v.tariff_id, v.version))
            charges.append(
                Charge(
                    idx,
                    p.start,
                    p.end,
                    dim,
                    v.tariff_id,
                    v.version,
                    comp.element_index,
                    comp.component_index,
                    qty,
                    ZERO,
                    comp.price,
                    comp.vat,
                    comp.step_size,
                )
            )
        energy_before += p.energy_wh

    # ---- 2. FLAT fees (once per reservation, from reservation elements; once per session, at its start)
    flat_charges: list[Charge] = []
    flat_at = [(first_res_period.start, first_res_period, True)] if first_res_period is not None else []
    if first_session_period is not None or not plist:
        flat_at.append((start, first_session_period, False))
    for at, first, res in flat_at:
        v = version_at(versions, at)
        if v is None:
            continue
        m = Moment(
            local=at.astimezone(tz),
            elapsed_s=seconds_between(start, at),
            power_kw=first.power_kw if first else None,
            current_a=first.current_a if first else None,
            reservation=(RESERVATION_EXPIRES if any_expired else RESERVATION) if res else None,
        )
        comp = v.find(FLAT, m)
        if comp is None:
            continue
        used.setdefault((v.tariff_id, v.version))
        idx = plist.index(first) if first is not None else -1
        flat_charges.append(
            Charge(
                idx,
                at,
                first.end if first else at,
                FLAT,
                v.tariff_id,
                v.version,
                comp.element_index,
                comp.component_index,
                ONE,
                ZERO,
                comp.price,
                comp.vat,
                1,
                reservation=res,
            )
        )

    # ---- 3. step_size, once per group, on the last billed period of the group
    steps: list[StepRounding] = []

    def apply_step(group: str, dims: tuple[str, ...]) -> None:
        last = None
        for c in charges:
            if c.dimension in dims and c.quantity > 0:
                last = c  # charges are chronological; within a period PARKING_TIME comes after TIME
        if last is None:
            return
        total = sum((c.quantity for c in charges if c.dimension == last.dimension and c.quantity > 0), ZERO)
        billed = _ceil_to(total, last.step_size)
        last.step_extra = billed - total
        steps.append(StepRounding(group, last.dimension, last.step_size, total, billed, last.period_index))

    apply_step(ENERGY, (ENERGY,))
    apply_step("TIME_AND_PARKING", (TIME, PARKING_TIME))
    apply_step("RESERVATION", (RESERVATION_TIME,))

    # ---- 4. lines: one per (version, dimension, element, component), rounded once
    groups: dict[tuple[str, str, str, int, int, bool], list[Charge]] = {}
    for c in flat_charges + charges:
        key = (c.tariff_id, c.tariff_version, c.dimension, c.element_index, c.component_index, c.reservation)
        groups.setdefault(key, []).append(c)
    lines: list[Line] = []
    for (tid, ver, dim, ei, ci, _res), cs in groups.items():
        unit = UNIT_DIVISOR[dim]
        price, vat = cs[0].unit_price, cs[0].vat
        qty = sum((c.billed_quantity for c in cs), ZERO)
        exact = qty * price / unit
        excl = round_amount(exact)
        incl = excl if vat is None else round_amount(exact * (1 + vat / 100))
        if len(cs) == 1:
            cs[0].amount_excl, cs[0].amount_incl = excl, incl
        else:
            weights = [c.billed_quantity for c in cs]
            for c, a, b in zip(
                cs, allocate(excl, weights, currency), allocate(incl, weights, currency), strict=True
            ):
                c.amount_excl, c.amount_incl = a, b
        lines.append(Line("component", dim, tid, ver, ei, ci, qty, price, vat, excl, incl, cs))

    # ---- 5. totals, min/max price
    def total(dims: tuple[str, ...], flat_res: bool | None = None) -> tuple[Decimal, Decimal]:
        ex = inc = ZERO
        for ln in lines:
            if ln.dimension not in dims:
                continue
            if flat_res is not None and ln.dimension == FLAT and ln.charges[0].reservation != flat_res:
                continue
            ex += ln.amount_excl
            inc += ln.amount_incl
        return ex, inc

    zero = round_amount(ZERO)
    fixed = total((FLAT,), flat_res=False)
    energy_c = total((ENERGY,))
    time_c = total((TIME,))
    park_c = total((PARKING_TIME,))
    res_c = total((RESERVATION_TIME, FLAT), flat_res=True)
    sum_excl = zero + sum((ln.amount_excl for ln in lines), ZERO)
    sum_incl = zero + sum((ln.amount_incl for ln in lines), ZERO)

    base = version_at(versions, start) or versions[0]
    for kind, bound_excl, bound_incl in (
        (MIN_PRICE, base.min_excl, base.min_incl),
        (MAX_PRICE, base.max_excl, base.max_incl),
    ):
        if bound_excl is None and bound_incl is None:
            continue
        target_excl, target_incl = sum_excl, sum_incl
        if bound_excl is not None:
            b = round_amount(bound_excl)
            if (kind == MIN_PRICE and sum_excl < b) or (kind == MAX_PRICE and sum_excl > b):
                target_excl = b
        if bound_incl is not None:
            b = round_amount(bound_incl)
            if (kind == MIN_PRICE and sum_incl < b) or (kind == MAX_PRICE and sum_incl > b):
                target_incl = b
        elif target_excl != sum_excl:
            # No incl. VAT bound given: keep the session's own VAT ratio (none if the session is free).
            ratio = sum_incl / sum_excl if sum_excl else ONE
            target_incl = round_amount(target_excl * ratio)
            if (kind == MIN_PRICE and target_incl < sum_incl) or (
                kind == MAX_PRICE and target_incl > sum_incl
            ):
                target_incl = sum_incl
        if target_excl != sum_excl or target_incl != sum_incl:
            lines.append(
                Line(
                    kind,
                    kind,
                    base.tariff_id,
                    base.version,
                    None,
                    None,
                    ONE,
                    None,
                    None,
                    target_excl - sum_excl,
                    target_incl - sum_incl,
                )
            )
            used.setdefault((base.tariff_id, base.version))
            sum_excl, sum_incl = target_excl, target_incl

    total_energy = sum((p.energy_wh for p in plist if not p.is_reservation), ZERO) / 1000
    total_parking = sum((p.parking_s for p in plist), ZERO) / _H
    return PricingResult(
        currency=currency,
        session_start=start,
        session_end=end,
        total_cost=_price(sum_excl, sum_incl),
        total_fixed_cost=_price(zero + fixed[0], zero + fixed[1]),
        total_energy=total_energy.quantize(_QTY),
        total_energy_cost=_price(zero + energy_c[0], zero + energy_c[1]),
        total_time=(seconds_between(start, end) / _H).quantize(_QTY),
        total_time_cost=_price(zero + time_c[0], zero + time_c[1]),
        total_parking_time=total_parking.quantize(_QTY),
        total_parking_cost=_price(zero + park_c[0], zero + park_c[1]),
        total_reservation_cost=_price(zero + res_c[0], zero + res_c[1]),
        lines=lines,
        periods=plist,
        period_tariffs=period_tariffs,
        tariffs_used=list(used),
        step_roundings=steps,
    )
