"""The pricing engine: OCPI 2.2.1 tariff semantics applied to a session's charging periods.

``price_session(tariffs, periods, session_start, session_end, time_zone)`` is pure (no I/O, no clock). Steps:

1. Tariff versions: each tariff is valid from ``start_date_time`` (open if absent) until ``end_date_time``;
   at any instant the valid version with the latest start wins. Periods are cut at version boundaries and at
   every restriction boundary (:func:`tariffs.core.charging_periods.cut_for_tariffs`).
2. Per period and dimension (ENERGY, TIME = charging time, PARKING_TIME, reservation time) the first
   element, in list order, with a component of that dimension whose restrictions match at the period start is
   used; none matching means that quantity is free. A period with something to bill at an instant where no
   version is valid (before the first start, after an end_date_time) is a :class:`PricingError` naming the
   instant, never free (``allow_untariffed=True`` opts out; rating never does). The FLAT step likewise.
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

Before step 1 the periods are put into their published form (:mod:`tariffs.core.published_form`: boundaries
inside the session on whole milliseconds, energy to 1e-4 kWh, power and current to 3 decimals), so that a CDR
re-priced from its own OCPI JSON gives its totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import ROUND_CEILING, Decimal

from kernel.money import allocate, rounder
from kernel.timeutil import ensure_utc, zone
from tariffs.core.charging_periods import Period, cut_for_tariffs, seconds_between
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
from tariffs.core.ocpi_periods import periods_from_ocpi
from tariffs.core.pricing_result import (
    MAX_PRICE,
    MIN_PRICE,
    ONE,
    ZERO,
    Charge,
    Line,
    PricingResult,
    StepRounding,
)
from tariffs.core.published_form import publishable, published_quantity
from tariffs.core.restrictions import RESERVATION, RESERVATION_EXPIRES, Moment
from tariffs.core.tariff_document import ChargingPeriod, Price, Tariff

_H = Decimal(3600)

RoundAmount = Callable[[Decimal], Decimal]
"""The currency's rounding rule (:func:`kernel.money.rounder`), fixed for one pricing call."""


class PricingError(ValueError):
    """The inputs cannot be priced (no tariff, mixed currencies, periods outside the session...)."""


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


@dataclass(frozen=True, slots=True)
class SessionFrame:
    """What every step needs to know about the session: its tariff versions, bounds (UTC) and local zone."""

    versions: list[CompiledTariff]
    start: datetime
    end: datetime
    tz: tzinfo
    allow_untariffed: bool = False

    def no_version(self, instant: datetime) -> PricingError:
        ids = ", ".join(sorted({v.tariff_id for v in self.versions}))
        when = ensure_utc(instant).isoformat().replace("+00:00", "Z")
        return PricingError(f"no tariff version valid at {when} for tariff {ids}")


@dataclass(slots=True)
class MatchedPeriods:
    """Step 1's output: the charge per period and dimension, and what the FLAT step needs to know."""

    charges: list[Charge]  # chronological; within a period ENERGY, TIME, PARKING_TIME
    period_tariffs: list[str | None]  # tariff id per period (None: no version valid then)
    first_session_period: Period | None
    first_reservation_period: Period | None
    any_reservation_expired: bool


@dataclass(frozen=True, slots=True)
class CostSums:
    """The session's total excl. and incl. VAT after min/max price, and the adjustment lines that made it."""

    excl: Decimal
    incl: Decimal
    adjustments: list[Line]


def price_session(
    tariffs: TariffInput,
    periods: Sequence[Period] | Sequence[ChargingPeriod],
    session_start: datetime,
    session_end: datetime,
    time_zone: str,
    *,
    precut: bool = False,
    allow_untariffed: bool = False,
) -> PricingResult:
    """Price one session. See the module docstring for the rules; each step below is one of them.

    ``tariffs``: a Tariff, a CompiledTariff, or a list of versions (each valid from its start_date_time).
    ``periods``: :class:`tariffs.core.charging_periods.Period` objects or OCPI ChargingPeriods, chronological.
    ``time_zone``: the location's IANA zone (restrictions are local). ``precut=True`` skips cutting periods at
    tariff boundaries (only when the caller already did, e.g. :func:`tariffs.core.meter_periods.periods_from_meter_values`).
    ``allow_untariffed=True`` prices what falls where no version is valid as free instead of raising
    :class:`PricingError` (for what-if tools only; rating never passes it).
    """
    versions = compile_versions(tariffs)
    currency = versions[0].currency
    round_amount = rounder(currency)  # kernel.money's rule, fixed for this call
    start, end = ensure_utc(session_start), ensure_utc(session_end)
    if end < start:
        raise PricingError("session ends before it starts")
    plist = _as_periods(periods, end)
    if not precut:
        plist = cut_for_tariffs(plist, versions, start, end, time_zone)
    plist = publishable(plist, start, end)  # price what is published (T5): the CDR's OCPI precision
    frame = SessionFrame(versions, start, end, zone(time_zone), allow_untariffed)

    matched = match_components(frame, plist)
    flat_charges = flat_fees(frame, plist, matched)
    steps = apply_step_sizes(matched.charges)
    lines = cost_lines(flat_charges + matched.charges, currency, round_amount)
    sums = clamp_to_min_max(frame, lines, round_amount)
    return _result(frame, currency, round_amount, plist, matched, flat_charges, lines, sums, steps)


def _as_periods(periods: Sequence[Period] | Sequence[ChargingPeriod], end: datetime) -> list[Period]:
    """The session's periods as :class:`Period` s (OCPI ChargingPeriods end where the next starts)."""
    ocpi = [p for p in periods if isinstance(p, ChargingPeriod)]
    if ocpi and len(ocpi) == len(periods):
        return periods_from_ocpi(ocpi, end)
    engine_periods = [p for p in periods if isinstance(p, Period)]
    if len(engine_periods) != len(periods):
        raise PricingError("periods must be all OCPI ChargingPeriods or all engine Periods")
    return engine_periods


def match_components(frame: SessionFrame, plist: Sequence[Period]) -> MatchedPeriods:
    """Step 1-2: per period and dimension, the first component (element order) whose restrictions match."""
    matched = MatchedPeriods([], [], None, None, False)
    energy_before = ZERO
    for idx, p in enumerate(plist):
        v = version_at(frame.versions, p.start)
        matched.period_tariffs.append(v.tariff_id if v else None)
        is_res = p.is_reservation
        if is_res:
            matched.any_reservation_expired = matched.any_reservation_expired or p.expired
            if matched.first_reservation_period is None:
                matched.first_reservation_period = p
        elif matched.first_session_period is None:
            matched.first_session_period = p
        if v is not None:
            matched.charges.extend(_period_charges(frame, v, idx, p, energy_before))
        elif not frame.allow_untariffed and (p.energy_wh or p.time_s or p.parking_s or p.reservation_s):
            raise frame.no_version(p.start)
        energy_before += p.energy_wh
    return matched


def _period_charges(
    frame: SessionFrame, v: CompiledTariff, idx: int, p: Period, energy_before: Decimal
) -> Iterable[Charge]:
    """The charges of one period under version ``v``: one per dimension with a quantity and a component."""
    m = Moment(
        local=p.start.astimezone(frame.tz),
        energy_wh=energy_before,
        elapsed_s=seconds_between(frame.start, p.start),
        power_kw=p.power_kw,
        current_a=p.current_a,
        reservation=(RESERVATION_EXPIRES if p.expired else RESERVATION) if p.is_reservation else None,
    )
    wanted: tuple[tuple[str, Decimal], ...]
    if p.is_reservation:
        wanted = ((RESERVATION_TIME, p.reservation_s),)
    else:
        wanted = ((ENERGY, p.energy_wh), (TIME, p.time_s), (PARKING_TIME, p.parking_s))
    for dim, qty in wanted:
        if not qty:
            continue
        comp = v.find(dim, m)
        if comp is None:
            continue
        yield Charge(
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


def flat_fees(frame: SessionFrame, plist: Sequence[Period], matched: MatchedPeriods) -> list[Charge]:
    """Step 3: FLAT once per reservation (from reservation elements) and once per session, at its start."""
    first_res = matched.first_reservation_period
    first_session = matched.first_session_period
    flat_at: list[tuple[datetime, Period | None, bool]] = []
    if first_res is not None:
        flat_at.append((first_res.start, first_res, True))
    if first_session is not None or not plist:
        flat_at.append((frame.start, first_session, False))
    out: list[Charge] = []
    for at, first, res in flat_at:
        v = version_at(frame.versions, at)
        if v is None:
            if frame.allow_untariffed:
                continue
            raise frame.no_version(at)
        m = Moment(
            local=at.astimezone(frame.tz),
            elapsed_s=seconds_between(frame.start, at),
            power_kw=first.power_kw if first else None,
            current_a=first.current_a if first else None,
            reservation=(RESERVATION_EXPIRES if matched.any_reservation_expired else RESERVATION)
            if res
            else None,
        )
        comp = v.find(FLAT, m)
        if comp is None:
            continue
        out.append(
            Charge(
                plist.index(first) if first is not None else -1,
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
    return out


_STEP_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (ENERGY, (ENERGY,)),
    ("TIME_AND_PARKING", (TIME, PARKING_TIME)),
    ("RESERVATION", (RESERVATION_TIME,)),
)


def apply_step_sizes(charges: Sequence[Charge]) -> list[StepRounding]:
    """Step 4: step_size once per group, the extra quantity billed on the group's last billed charge.

    Sets ``step_extra`` on that charge and returns what was rounded, group by group."""
    steps: list[StepRounding] = []
    for group, dims in _STEP_GROUPS:
        last = None
        for c in charges:
            if c.dimension in dims and c.quantity > 0:
                last = c  # charges are chronological; within a period PARKING_TIME comes after TIME
        if last is None:
            continue
        total = sum((c.quantity for c in charges if c.dimension == last.dimension and c.quantity > 0), ZERO)
        billed = _ceil_to(total, last.step_size)
        last.step_extra = billed - total
        steps.append(StepRounding(group, last.dimension, last.step_size, total, billed, last.period_index))
    return steps


def cost_lines(charges: Sequence[Charge], currency: str, round_amount: RoundAmount) -> list[Line]:
    """Step 5: one line per (version, dimension, element, component), rounded once, split back over periods."""
    groups: dict[tuple[str, str, str, int, int, bool], list[Charge]] = {}
    for c in charges:
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
    return lines


def clamp_to_min_max(frame: SessionFrame, lines: Sequence[Line], round_amount: RoundAmount) -> CostSums:
    """Step 6: min_price / max_price of the version valid at the start clamp excl. and incl. VAT independently."""
    zero = round_amount(ZERO)
    sum_excl = zero + sum((ln.amount_excl for ln in lines), ZERO)
    sum_incl = zero + sum((ln.amount_incl for ln in lines), ZERO)
    adjustments: list[Line] = []
    base = version_at(frame.versions, frame.start) or frame.versions[0]
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
            adjustments.append(
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
            sum_excl, sum_incl = target_excl, target_incl
    return CostSums(sum_excl, sum_incl, adjustments)


def _dimension_cost(
    lines: Sequence[Line], dims: tuple[str, ...], flat_reservation: bool | None = None
) -> tuple[Decimal, Decimal]:
    """Excl./incl. VAT sum of the component lines of ``dims`` (FLAT lines: reservation ones or the others)."""
    ex = inc = ZERO
    for ln in lines:
        if ln.dimension not in dims:
            continue
        if (
            flat_reservation is not None
            and ln.dimension == FLAT
            and ln.charges[0].reservation != flat_reservation
        ):
            continue
        ex += ln.amount_excl
        inc += ln.amount_incl
    return ex, inc


def _first_use(charges: Iterable[Charge], adjustments: Iterable[Line]) -> list[tuple[str, str]]:
    """(tariff id, version) of every version that billed something, in order of first use."""
    used: dict[tuple[str, str], None] = {}
    for c in charges:
        used.setdefault((c.tariff_id, c.tariff_version))
    for ln in adjustments:
        used.setdefault((ln.tariff_id, ln.tariff_version))
    return list(used)


def _result(
    frame: SessionFrame,
    currency: str,
    round_amount: RoundAmount,
    plist: list[Period],
    matched: MatchedPeriods,
    flat_charges: list[Charge],
    lines: list[Line],
    sums: CostSums,
    steps: list[StepRounding],
) -> PricingResult:
    """The result: totals per dimension (sums of rounded lines), lines followed by the min/max adjustments."""
    zero = round_amount(ZERO)

    def cost(dims: tuple[str, ...], flat_reservation: bool | None = None) -> Price:
        ex, inc = _dimension_cost(lines, dims, flat_reservation)
        return _price(zero + ex, zero + inc)

    total_energy = sum((p.energy_wh for p in plist if not p.is_reservation), ZERO) / 1000
    total_parking = sum((p.parking_s for p in plist), ZERO) / _H
    return PricingResult(
        currency=currency,
        session_start=frame.start,
        session_end=frame.end,
        total_cost=_price(sums.excl, sums.incl),
        total_fixed_cost=cost((FLAT,), flat_reservation=False),
        total_energy=published_quantity(total_energy),
        total_energy_cost=cost((ENERGY,)),
        total_time=published_quantity(seconds_between(frame.start, frame.end) / _H),
        total_time_cost=cost((TIME,)),
        total_parking_time=published_quantity(total_parking),
        total_parking_cost=cost((PARKING_TIME,)),
        total_reservation_cost=cost((RESERVATION_TIME, FLAT), flat_reservation=True),
        lines=[*lines, *sums.adjustments],
        periods=plist,
        period_tariffs=matched.period_tariffs,
        tariffs_used=_first_use([*matched.charges, *flat_charges], sums.adjustments),
        step_roundings=steps,
    )
