"""Charging periods: the engine's :class:`Period`, and cutting periods wherever the price may change.

A :class:`Period` is the engine's own, exact view of an OCPI ChargingPeriod: a UTC interval with the energy
charged in it (Wh), the seconds spent charging (``time_s``), parking (``parking_s``) or in a reservation
(``reservation_s``), and a representative power (kW) / current (A) used for power/current restrictions.

Cuts happen at every instant that can switch a tariff element (:func:`cut_instants`): the local times of day
named by any restriction (both folds on DST days), every local midnight (weekday / date changes), every DST
transition (the wall clock jumps), tariff version boundaries, duration thresholds; energy thresholds are cut
by :func:`split_at_energy` (linear interpolation inside a period). Periods built from meter values
(:mod:`tariffs.core.meter_periods`) are also cut where power or current crosses a restriction threshold and
where charging turns into parking; :mod:`tariffs.core.ocpi_periods` converts to and from OCPI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kernel.timeutil import ensure_utc, zone
from tariffs.core.compiled_tariff import CompiledTariff

ZERO = Decimal(0)
_US = Decimal(1_000_000)


def seconds_between(a: datetime, b: datetime) -> Decimal:
    """Exact seconds from ``a`` to ``b`` (microsecond precision, no float)."""
    d = b - a
    return Decimal(d.days * 86400 + d.seconds) + Decimal(d.microseconds) / _US


_WH_PER_S_TO_KW = Decimal("3.6")  # 1 Wh/s = 3600 W = 3.6 kW


def average_power_kw(energy_wh: Decimal, seconds: Decimal) -> Decimal:
    """The average power in kW (OCPI restrictions' unit) of ``energy_wh`` delivered over ``seconds`` (> 0).

    The one conversion used by quotes and by periods built from meter values."""
    return energy_wh * _WH_PER_S_TO_KW / seconds


@dataclass(slots=True)
class Period:
    """One charging period: ``[start, end)`` in UTC and what happened in it."""

    start: datetime
    end: datetime
    energy_wh: Decimal = ZERO
    time_s: Decimal = ZERO  # charging time
    parking_s: Decimal = ZERO  # connected, not charging
    reservation_s: Decimal = ZERO  # reserved, before the session
    power_kw: Decimal | None = None  # representative power for restrictions
    current_a: Decimal | None = None  # representative current (sum over phases)
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None
    expired: bool = False  # reservation time of a reservation that expired unused

    @property
    def duration_s(self) -> Decimal:
        return seconds_between(self.start, self.end)

    @property
    def is_reservation(self) -> bool:
        return self.reservation_s > 0 and self.time_s == 0 and self.parking_s == 0


def charging(
    start: datetime,
    end: datetime,
    energy_wh: Decimal | int | str,
    *,
    power_kw: Decimal | None = None,
    current_a: Decimal | None = None,
    min_power_kw: Decimal | None = None,
    max_power_kw: Decimal | None = None,
    min_current_a: Decimal | None = None,
    max_current_a: Decimal | None = None,
) -> Period:
    """A charging period (all its time is charging time)."""
    return Period(
        start,
        end,
        Decimal(energy_wh),
        time_s=seconds_between(start, end),
        power_kw=power_kw,
        current_a=current_a,
        min_power_kw=min_power_kw,
        max_power_kw=max_power_kw,
        min_current_a=min_current_a,
        max_current_a=max_current_a,
    )


def parking(start: datetime, end: datetime) -> Period:
    """A parking period (connected, no energy)."""
    return Period(start, end, ZERO, parking_s=seconds_between(start, end), power_kw=ZERO, current_a=ZERO)


def reservation(start: datetime, end: datetime, *, expired: bool = False) -> Period:
    """Reservation time before a session (or an expired reservation when ``expired``)."""
    return Period(start, end, ZERO, reservation_s=seconds_between(start, end), expired=expired)


def is_expired_reservation(periods: Sequence[Period]) -> bool:
    """Whether ``periods`` are a reservation that never became a charging session: reservation time in some
    period, and no energy, charging time or parking time in any.

    OCPI 2.2.1 has no field that says a reservation expired; a CDR that "is the result of a reservation that
    never became a charging session" (mod_cdrs, ``session_id``) is recognised by its charging periods
    carrying only ``RESERVATION_TIME``, so its reservation time is priced with the ``RESERVATION_EXPIRES``
    elements ("costs for a reservation that expires (i.e. driver does not start a charging session before
    expiry_date of the reservation)")."""
    return any(p.reservation_s > 0 for p in periods) and not any(
        p.energy_wh or p.time_s or p.parking_s for p in periods
    )


def mark_expired_reservation(periods: Sequence[Period], expired: bool | None = None) -> list[Period]:
    """``periods`` with the reservation periods' ``expired`` marker set: inferred with
    :func:`is_expired_reservation` when ``expired`` is None (the rule for OCPI input), else as given (an
    operator who knows, ``evhub tariffs price --reservation-expired``)."""
    mark = is_expired_reservation(periods) if expired is None else expired
    return [replace(p, expired=mark) if p.is_reservation else p for p in periods]


# ----------------------------------------------------------------------------------------------- splitting


def fold_zero_length(periods: Iterable[Period]) -> list[Period]:
    """``periods`` (chronological) without the zero-length ones (``end <= start``), whose volumes are never
    dropped: energy, charging, parking and reservation time go to the next period with a later start, or to
    the previous period when none follows (all zero-length: one period, the first, with them all). Used where
    periods come from instants that may coincide: an OCPI CDR read back, the published form."""
    out: list[Period] = []
    carried: list[Period] = []  # zero-length periods waiting for a period to take their volumes
    for p in periods:
        if p.end <= p.start:
            carried.append(p)
            continue
        for z in carried:
            p = _absorb(p, z)
        carried = []
        out.append(p)
    if carried:
        if out:
            for z in carried:
                out[-1] = _absorb(out[-1], z)
        else:
            first = carried[0]
            for z in carried[1:]:
                first = _absorb(first, z)
            out.append(first)
    return out


def _absorb(p: Period, z: Period) -> Period:
    """``p`` with the additive volumes of the zero-length period ``z`` added (its own power/current kept)."""
    return replace(
        p,
        energy_wh=p.energy_wh + z.energy_wh,
        time_s=p.time_s + z.time_s,
        parking_s=p.parking_s + z.parking_s,
        reservation_s=p.reservation_s + z.reservation_s,
    )


def split(p: Period, at: datetime, first_energy_wh: Decimal | None = None) -> tuple[Period, Period]:
    """Split ``p`` at ``at`` (strictly inside). Additive quantities are prorated linearly in time (or the first
    part gets exactly ``first_energy_wh``); the second part gets the remainder so nothing is lost."""
    total = p.duration_s
    first = seconds_between(p.start, at)
    frac = first / total

    def part(q: Decimal) -> Decimal:
        if q == 0:
            return ZERO
        return first if q == total else q * frac

    e1 = part(p.energy_wh) if first_energy_wh is None else first_energy_wh
    t1, k1, r1 = part(p.time_s), part(p.parking_s), part(p.reservation_s)
    a = replace(p, end=at, energy_wh=e1, time_s=t1, parking_s=k1, reservation_s=r1)
    b = replace(
        p,
        start=at,
        energy_wh=p.energy_wh - e1,
        time_s=p.time_s - t1,
        parking_s=p.parking_s - k1,
        reservation_s=p.reservation_s - r1,
    )
    return a, b


def split_at_instants(periods: Sequence[Period], instants: Iterable[datetime]) -> list[Period]:
    """Cut periods at each instant that falls strictly inside one of them."""
    cuts = sorted(set(instants))
    if not cuts:
        return list(periods)
    out: list[Period] = []
    i = 0
    for p in periods:
        while i < len(cuts) and cuts[i] <= p.start:
            i += 1
        cur = p
        j = i
        while j < len(cuts) and cuts[j] < cur.end:
            a, cur = split(cur, cuts[j])
            out.append(a)
            j += 1
        out.append(cur)
    return out


def split_at_energy(periods: Sequence[Period], thresholds_wh: Iterable[Decimal]) -> list[Period]:
    """Cut periods where the session's cumulative energy reaches a threshold (linear inside a period)."""
    levels = sorted({t for t in thresholds_wh if t > 0})
    if not levels:
        return list(periods)
    out: list[Period] = []
    cum = ZERO
    for p in periods:
        cur = p
        while cur.energy_wh > 0:
            nxt = next((lv for lv in levels if cum < lv < cum + cur.energy_wh), None)
            if nxt is None:
                break
            need = nxt - cum
            us = int((need / cur.energy_wh * seconds_between(cur.start, cur.end) * _US).to_integral_value())
            at = cur.start + timedelta(microseconds=us)
            if not cur.start < at < cur.end:
                break
            a, cur = split(cur, at, first_energy_wh=need)
            out.append(a)
            cum += a.energy_wh
        out.append(cur)
        cum += cur.energy_wh
    return out


# ---------------------------------------------------------------------------------------------- boundaries


def _offset_transitions(tz_name: str, start: datetime, end: datetime) -> list[datetime]:
    """UTC instants in (start, end) where the zone's UTC offset changes (to the second)."""
    tz = zone(tz_name)
    out: list[datetime] = []
    day = timedelta(days=1)
    a = start
    while a < end:
        b = min(a + day, end)
        if a.astimezone(tz).utcoffset() != b.astimezone(tz).utcoffset():
            lo, hi = a, b  # offset(lo) != offset(hi); find the first instant with the new offset
            off_lo = lo.astimezone(tz).utcoffset()
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid <= lo:
                    mid = lo + timedelta(seconds=1)
                if mid.astimezone(tz).utcoffset() == off_lo:
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        a = b
    return out


def cut_instants(
    tariffs: Sequence[CompiledTariff], start: datetime, end: datetime, time_zone: str
) -> list[datetime]:
    """Every instant in (start, end) where some restriction or the tariff version may switch."""
    start, end = ensure_utc(start), ensure_utc(end)
    tz = zone(time_zone)
    minutes: set[int] = {0}
    durations: set[int] = set()
    out: set[datetime] = set()
    for t in tariffs:
        for r in t.all_restrictions():
            minutes |= r.clock_minutes()
            durations |= r.duration_thresholds_s()
        for edge in (t.valid_from, t.valid_to):
            if edge is not None and start < edge < end:
                out.add(edge)
    local_day = (start.astimezone(tz) - timedelta(days=1)).date()
    last_day = (end.astimezone(tz) + timedelta(days=1)).date()
    while local_day <= last_day:
        for m in minutes:
            for fold in (0, 1):
                wall = datetime(
                    local_day.year, local_day.month, local_day.day, m // 60, m % 60, tzinfo=tz, fold=fold
                )
                inst = wall.astimezone(UTC)
                if start < inst < end:
                    out.add(inst)
        local_day += timedelta(days=1)
    out.update(_offset_transitions(time_zone, start, end))
    for d in durations:
        inst = start + timedelta(seconds=d)
        if start < inst < end:
            out.add(inst)
    return sorted(out)


def energy_thresholds(tariffs: Sequence[CompiledTariff]) -> set[Decimal]:
    out: set[Decimal] = set()
    for t in tariffs:
        for r in t.all_restrictions():
            out |= r.energy_thresholds_wh()
    return out


def cut_for_tariffs(
    periods: Sequence[Period],
    tariffs: Sequence[CompiledTariff],
    session_start: datetime,
    session_end: datetime,
    time_zone: str,
) -> list[Period]:
    """Cut ``periods`` at all time and energy boundaries of ``tariffs`` (idempotent)."""
    if not periods:
        return []
    lo = min(session_start, periods[0].start)
    hi = max(session_end, periods[-1].end)
    out = split_at_instants(periods, cut_instants(tariffs, lo, hi, time_zone))
    # Durations count from the session start, which cut_instants used when lo == session_start.
    if lo != session_start:
        durs: set[int] = set()
        for t in tariffs:
            for r in t.all_restrictions():
                durs |= r.duration_thresholds_s()
        out = split_at_instants(out, [session_start + timedelta(seconds=d) for d in durs])
    return split_at_energy(out, energy_thresholds(tariffs))
