"""Charging periods from a meter series: energy, power and current samples become cut :class:`Period` s.

:func:`periods_from_meter_values` interpolates linearly between samples, turns stretches where the energy
register does not increase into parking (after an optional grace), and cuts where power or current crosses
a restriction threshold, on top of every cut of :func:`tariffs.core.charging_periods.cut_for_tariffs`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from kernel.timeutil import ensure_utc
from tariffs.core.charging_periods import (
    ZERO,
    Period,
    average_power_kw,
    charging,
    cut_for_tariffs,
    parking,
    seconds_between,
)
from tariffs.core.compiled_tariff import CompiledTariff

_US = Decimal(1_000_000)


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


def _bounded(pts: list[MeterSample], start: datetime, end: datetime) -> list[MeterSample]:
    """The readings that describe ``[start, end]``: the register at the start is the last reading at or before
    the start (a ``Transaction.Begin`` reading stamped just before it is the baseline), at the end the first
    reading at or after the end (a ``Transaction.End`` stamped just after it); both are moved onto the bound.
    """
    before = [p for p in pts if p.timestamp <= start]
    after = [p for p in pts if p.timestamp >= end]
    out = [replace(before[-1], timestamp=start)] if before else []
    out.extend(p for p in pts if start < p.timestamp < end)
    if after:
        out.append(replace(after[0], timestamp=end))
    return out


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

    The register at ``session_start`` is the last reading at or before it (a ``Transaction.Begin`` reading
    stamped just before the start is the baseline, never the first later reading); at ``session_end`` the
    first reading at or after it. Energy is linear between samples; power/current are linear between samples
    when given, else the power is the interval's average (energy / time). An interval in which the register does not increase is
    parking; an idle stretch shorter than ``parking_grace_s`` counts as charging time (a pause).
    """
    start, end = ensure_utc(session_start), ensure_utc(session_end)
    if end <= start:
        return []
    pts = _bounded(sorted((_sample(s) for s in samples), key=lambda s: s.timestamp), start, end)
    if not pts:
        return [parking(start, end)]
    if pts[0].timestamp > start:
        # No reading at or before the start: the register at the start is unknown, the stretch up to the
        # first reading has no measured energy (idle). A later reading is never the start value.
        pts.insert(0, MeterSample(start, pts[0].energy_wh))
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
            p0 = p1 = average_power_kw(de, dt)
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
