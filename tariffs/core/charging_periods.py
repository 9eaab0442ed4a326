"""Charging periods: building them from meter values or OCPI, and cutting them wherever the price may change.

A :class:`Period` is the engine's own, exact view of an OCPI ChargingPeriod: a UTC interval with the energy
charged in it (Wh), the seconds spent charging (``time_s``), parking (``parking_s``) or in a reservation
(``reservation_s``), and a representative power (kW) / current (A) used for power/current restrictions.

Cuts happen at every instant that can switch a tariff element (:func:`cut_instants`): the local times of day
named by any restriction (both folds on DST days), every local midnight (weekday / date changes), every DST
transition (the wall clock jumps), tariff version boundaries, duration thresholds; energy thresholds are cut
by :func:`split_at_energy` (linear interpolation inside a period). :func:`periods_from_meter_values` adds
cuts where power or current crosses a restriction threshold (linear between samples) and where charging
turns into parking (energy stops increasing).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kernel.timeutil import ensure_utc, zone
from tariffs.core.compiled_tariff import CompiledTariff
from tariffs.core.tariff_document import CdrDimension, CdrDimensionType, ChargingPeriod

ZERO = Decimal(0)
_US = Decimal(1_000_000)


def seconds_between(a: datetime, b: datetime) -> Decimal:
    """Exact seconds from ``a`` to ``b`` (microsecond precision, no float)."""
    d = b - a
    return Decimal(d.days * 86400 + d.seconds) + Decimal(d.microseconds) / _US


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


# ----------------------------------------------------------------------------------------------- splitting


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


# ------------------------------------------------------------------------------------------- meter values


@dataclass(frozen=True, slots=True)
class MeterSample:
    """A meter reading: UTC time, cumulative energy register (Wh), optional power (W) and current (A)."""

    timestamp: datetime
    energy_wh: Decimal
    power_w: Decimal | None = None
    current_a: Decimal | None = None


def _sample(s: MeterSample | Sequence[object]) -> MeterSample:
    if isinstance(s, MeterSample):
        return s
    vals = [*list(s), None, None]
    ts, e, p, c = vals[0], vals[1], vals[2], vals[3]

    def dec(v: object) -> Decimal | None:
        if v is None:
            return None
        if isinstance(v, float):
            return Decimal(repr(v))
        if isinstance(v, Decimal | int | str):
            return Decimal(v)
        raise TypeError(f"meter sample value {v!r} is not a number")

    if not isinstance(ts, datetime):
        raise TypeError(f"meter sample time {ts!r} is not a datetime")
    energy = dec(e)
    if energy is None:
        raise ValueError(f"meter sample at {ts.isoformat()} has no energy reading")
    return MeterSample(ensure_utc(ts), energy, dec(p), dec(c))


def _crossings(v0: Decimal | None, v1: Decimal | None, thresholds: Iterable[Decimal]) -> list[Decimal]:
    """Fractions in (0, 1) where a linear v0->v1 crosses a threshold."""
    if v0 is None or v1 is None or v0 == v1:
        return []
    return [(x - v0) / (v1 - v0) for x in thresholds if min(v0, v1) < x < max(v0, v1)]


def periods_from_meter_values(
    samples: Sequence[MeterSample | Sequence[object]],
    session_start: datetime,
    session_end: datetime,
    tariffs: Sequence[CompiledTariff] = (),
    time_zone: str = "UTC",
    *,
    parking_grace_s: int = 0,
) -> list[Period]:
    """Turn a cumulative meter series into charging periods cut at every price boundary of ``tariffs``.

    Energy is linear between samples; power/current are linear between samples when given, else the power
    is the interval's average (energy / time). An interval in which the register does not increase is
    parking; an idle stretch shorter than ``parking_grace_s`` counts as charging time (a pause).
    """
    start, end = ensure_utc(session_start), ensure_utc(session_end)
    if end <= start:
        return []
    pts = sorted((_sample(s) for s in samples), key=lambda s: s.timestamp)
    pts = [p for p in pts if start <= p.timestamp <= end]
    if not pts:
        return [parking(start, end)]
    if pts[0].timestamp > start:
        pts.insert(0, replace(pts[0], timestamp=start))
    if pts[-1].timestamp < end:
        pts.append(
            MeterSample(
                end,
                pts[-1].energy_wh,
                ZERO if pts[-1].power_w is not None else None,
                ZERO if pts[-1].current_a is not None else None,
            )
        )
    p_thr: set[Decimal] = set()
    c_thr: set[Decimal] = set()
    for t in tariffs:
        for r in t.all_restrictions():
            p_thr |= r.power_thresholds_kw()
            c_thr |= r.current_thresholds_a()

    raw: list[tuple[Period, bool]] = []  # (period, idle)
    for a, b in itertools.pairwise(pts):
        if b.timestamp <= a.timestamp:
            continue
        de = b.energy_wh - a.energy_wh
        idle = de <= 0
        dt = seconds_between(a.timestamp, b.timestamp)
        if idle:
            raw.append((parking(a.timestamp, b.timestamp), True))
            continue
        if a.power_w is not None and b.power_w is not None:
            p0, p1 = a.power_w / 1000, b.power_w / 1000
        else:
            p0 = p1 = de / dt * Decimal("3.6")
        c0, c1 = a.current_a, b.current_a
        if c0 is not None and c1 is None:
            c1 = c0
        fracs = sorted({*_crossings(p0, p1, p_thr), *_crossings(c0, c1, c_thr)})
        edges = [ZERO, *fracs, Decimal(1)]
        e_done = ZERO
        for f0, f1 in itertools.pairwise(edges):
            s_at = a.timestamp + timedelta(microseconds=int((dt * f0 * _US).to_integral_value()))
            e_at = a.timestamp + timedelta(microseconds=int((dt * f1 * _US).to_integral_value()))
            if e_at <= s_at:
                continue
            energy = de - e_done if f1 == 1 else de * (f1 - f0)
            e_done += energy
            pa, pb = p0 + (p1 - p0) * f0, p0 + (p1 - p0) * f1
            pm = (pa + pb) / 2
            cm = cmin = cmax = None
            if c0 is not None and c1 is not None:
                ca, cb = c0 + (c1 - c0) * f0, c0 + (c1 - c0) * f1
                cm, cmin, cmax = (ca + cb) / 2, min(ca, cb), max(ca, cb)
            raw.append(
                (
                    charging(
                        s_at,
                        e_at,
                        energy,
                        power_kw=pm,
                        current_a=cm,
                        min_power_kw=min(pa, pb),
                        max_power_kw=max(pa, pb),
                        min_current_a=cmin,
                        max_current_a=cmax,
                    ),
                    False,
                )
            )

    # Parking grace: short idle stretches are pauses, counted as charging time.
    if parking_grace_s > 0:
        i = 0
        while i < len(raw):
            if not raw[i][1]:
                i += 1
                continue
            j = i
            while j < len(raw) and raw[j][1]:
                j += 1
            if seconds_between(raw[i][0].start, raw[j - 1][0].end) < parking_grace_s:
                for k in range(i, j):
                    p = raw[k][0]
                    raw[k] = (replace(p, time_s=p.parking_s, parking_s=ZERO), False)
            i = j

    merged = _merge([p for p, _ in raw], p_thr, c_thr)
    return cut_for_tariffs(merged, tariffs, start, end, time_zone) if tariffs else merged


def _key(p: Period, p_thr: set[Decimal], c_thr: set[Decimal]) -> tuple[object, ...]:
    kind = "P" if p.parking_s > 0 else "C"
    pk = tuple(p.power_kw is not None and p.power_kw >= x for x in sorted(p_thr))
    ck = tuple(p.current_a is not None and p.current_a >= x for x in sorted(c_thr))
    return kind, pk, ck, p.current_a is None


def _weighted(a: Decimal | None, wa: Decimal, b: Decimal | None, wb: Decimal) -> Decimal | None:
    if a is None or b is None or wa + wb == 0:
        return None
    return (a * wa + b * wb) / (wa + wb)


def _mn(a: Decimal | None, b: Decimal | None, f: Callable[[Decimal, Decimal], Decimal]) -> Decimal | None:
    return None if a is None or b is None else f(a, b)


def _merge(periods: list[Period], p_thr: set[Decimal], c_thr: set[Decimal]) -> list[Period]:
    """Merge neighbours that no restriction can tell apart (same kind, same side of every threshold)."""
    out: list[Period] = []
    for p in periods:
        if out and out[-1].end == p.start and _key(out[-1], p_thr, c_thr) == _key(p, p_thr, c_thr):
            q = out[-1]
            wq, wp = q.duration_s, p.duration_s
            out[-1] = Period(
                q.start,
                p.end,
                q.energy_wh + p.energy_wh,
                q.time_s + p.time_s,
                q.parking_s + p.parking_s,
                q.reservation_s + p.reservation_s,
                power_kw=_weighted(q.power_kw, wq, p.power_kw, wp),
                current_a=_weighted(q.current_a, wq, p.current_a, wp),
                min_power_kw=_mn(q.min_power_kw, p.min_power_kw, min),
                max_power_kw=_mn(q.max_power_kw, p.max_power_kw, max),
                min_current_a=_mn(q.min_current_a, p.min_current_a, min),
                max_current_a=_mn(q.max_current_a, p.max_current_a, max),
            )
        else:
            out.append(p)
    return out


# --------------------------------------------------------------------------------------------------- OCPI

_H = Decimal(3600)


def periods_from_ocpi(charging_periods: Sequence[ChargingPeriod], session_end: datetime) -> list[Period]:
    """OCPI charging periods (each ends where the next starts; the last at ``session_end``) as Periods.

    ENERGY (kWh), TIME, PARKING_TIME and RESERVATION_TIME (hours) are taken as given. The representative
    power is POWER, else the mean of MIN_POWER and MAX_POWER, else whichever is present (same for current).
    """
    cps = sorted(charging_periods, key=lambda c: c.start_date_time)
    out: list[Period] = []
    for i, cp in enumerate(cps):
        s = cp.start_date_time
        e = cps[i + 1].start_date_time if i + 1 < len(cps) else ensure_utc(session_end)
        if e <= s:
            continue
        v = cp.volume
        T = CdrDimensionType

        def rep(avg: Decimal | None, lo: Decimal | None, hi: Decimal | None) -> Decimal | None:
            if avg is not None:
                return avg
            if lo is not None and hi is not None:
                return (lo + hi) / 2
            return lo if lo is not None else hi

        time_h, park_h, res_h = v(T.TIME), v(T.PARKING_TIME), v(T.RESERVATION_TIME)
        out.append(
            Period(
                s,
                e,
                energy_wh=(v(T.ENERGY) or ZERO) * 1000,
                time_s=(time_h or ZERO) * _H,
                parking_s=(park_h or ZERO) * _H,
                reservation_s=(res_h or ZERO) * _H,
                power_kw=rep(v(T.POWER), v(T.MIN_POWER), v(T.MAX_POWER)),
                current_a=rep(v(T.CURRENT), v(T.MIN_CURRENT), v(T.MAX_CURRENT)),
                min_power_kw=v(T.MIN_POWER),
                max_power_kw=v(T.MAX_POWER),
                min_current_a=v(T.MIN_CURRENT),
                max_current_a=v(T.MAX_CURRENT),
            )
        )
    return out


def _q(x: Decimal, places: str = "0.000001") -> Decimal:
    return x.quantize(Decimal(places)).normalize() if x else ZERO


def to_ocpi(
    periods: Sequence[Period], tariff_ids: Sequence[str | None] | None = None
) -> list[ChargingPeriod]:
    """Periods as OCPI ChargingPeriods (kWh and hours, 6 decimals), optionally with their tariff ids."""
    T = CdrDimensionType
    out = []
    for i, p in enumerate(periods):
        dims = []
        if p.energy_wh:
            dims.append(CdrDimension(type=T.ENERGY, volume=_q(p.energy_wh / 1000)))
        if p.time_s:
            dims.append(CdrDimension(type=T.TIME, volume=_q(p.time_s / _H)))
        if p.parking_s:
            dims.append(CdrDimension(type=T.PARKING_TIME, volume=_q(p.parking_s / _H)))
        if p.reservation_s:
            dims.append(CdrDimension(type=T.RESERVATION_TIME, volume=_q(p.reservation_s / _H)))
        for kind, val in (
            (T.MIN_POWER, p.min_power_kw),
            (T.MAX_POWER, p.max_power_kw),
            (T.MIN_CURRENT, p.min_current_a),
            (T.MAX_CURRENT, p.max_current_a),
        ):
            if val is not None and p.time_s:
                dims.append(CdrDimension(type=kind, volume=_q(val, "0.001")))
        if not dims:
            dims.append(CdrDimension(type=T.TIME, volume=ZERO))
        out.append(
            ChargingPeriod(
                start_date_time=p.start, dimensions=dims, tariff_id=tariff_ids[i] if tariff_ids else None
            )
        )
    return out
