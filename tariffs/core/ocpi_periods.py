"""OCPI ChargingPeriods <-> the engine's :class:`Period` s (OCPI CDR dimensions in kWh and hours)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from kernel.timeutil import ensure_utc
from tariffs.core.charging_periods import (
    ZERO,
    Period,
    fold_zero_length,
    mark_expired_reservation,
    seconds_between,
)
from tariffs.core.published_form import LEVEL_STEP, QUANTITY_STEP, stated_times
from tariffs.core.tariff_document import CdrDimension, CdrDimensionType, ChargingPeriod

_H = Decimal(3600)


def periods_from_ocpi(
    charging_periods: Sequence[ChargingPeriod],
    session_end: datetime,
    *,
    reservation_expired: bool | None = None,
) -> list[Period]:
    """OCPI charging periods (each ends where the next starts; the last at ``session_end``) as Periods.

    Periods carrying only RESERVATION_TIME (no ENERGY, TIME or PARKING_TIME anywhere) are a reservation that
    expired unused: their reservation periods are marked ``expired``, so ``RESERVATION_EXPIRES`` elements
    price them (:func:`tariffs.core.charging_periods.mark_expired_reservation`); ``reservation_expired``
    True/False overrides that inference.

    ENERGY (kWh), TIME, PARKING_TIME and RESERVATION_TIME (hours) are taken as given. The representative
    power is POWER, else the mean of MIN_POWER and MAX_POWER, else whichever is present (same for current).
    A zero-length period (the next one starts at the same instant, or the session ends when it starts) is not
    a period of its own, but its volumes are never dropped: they go to the next period with a later start, or
    to the previous period when none follows (one zero-length period at the start when there is no other).
    """
    cps = sorted(charging_periods, key=lambda c: c.start_date_time)
    periods = []
    for i, cp in enumerate(cps):
        s = cp.start_date_time
        e = cps[i + 1].start_date_time if i + 1 < len(cps) else ensure_utc(session_end)
        periods.append(_period(cp, s, max(s, e)))
    out = fold_zero_length(periods)
    return mark_expired_reservation(out, reservation_expired)


def _times(
    time_h: Decimal | None, park_h: Decimal | None, res_h: Decimal | None, duration_s: Decimal
) -> tuple[Decimal, ...]:
    """Charging, parking and reservation seconds of a period from its stated hours (None: not stated).

    When the stated hours fill the period within the published rounding (0.5e-4 h per stated dimension), they
    are the period's exact duration split in the stated proportion
    (:func:`tariffs.core.published_form.stated_times`), so a CDR re-read from its own OCPI form prices like
    the periods it was priced from; otherwise taken as given."""
    exact = stated_times((time_h, park_h, res_h), duration_s)
    if exact is not None:
        return exact
    return tuple((h or ZERO) * _H for h in (time_h, park_h, res_h))


def _period(cp: ChargingPeriod, s: datetime, e: datetime) -> Period:
    v = cp.volume
    T = CdrDimensionType

    def rep(avg: Decimal | None, lo: Decimal | None, hi: Decimal | None) -> Decimal | None:
        if avg is not None:
            return avg
        if lo is not None and hi is not None:
            return (lo + hi) / 2
        return lo if lo is not None else hi

    time_s, parking_s, reservation_s = _times(
        v(T.TIME), v(T.PARKING_TIME), v(T.RESERVATION_TIME), seconds_between(s, e)
    )
    return Period(
        s,
        e,
        energy_wh=(v(T.ENERGY) or ZERO) * 1000,
        time_s=time_s,
        parking_s=parking_s,
        reservation_s=reservation_s,
        power_kw=rep(v(T.POWER), v(T.MIN_POWER), v(T.MAX_POWER)),
        current_a=rep(v(T.CURRENT), v(T.MIN_CURRENT), v(T.MAX_CURRENT)),
        min_power_kw=v(T.MIN_POWER),
        max_power_kw=v(T.MAX_POWER),
        min_current_a=v(T.MIN_CURRENT),
        max_current_a=v(T.MAX_CURRENT),
    )


def _q(x: Decimal, step: Decimal = QUANTITY_STEP) -> Decimal:
    return x.quantize(step, rounding=ROUND_HALF_UP).normalize() if x else ZERO


def to_ocpi(
    periods: Sequence[Period], tariff_ids: Sequence[str | None] | None = None
) -> list[ChargingPeriod]:
    """Periods as OCPI ChargingPeriods (kWh and hours, 4 decimals as OCPI says), optionally with their tariff ids; POWER and
    CURRENT (3 decimals) state the representative values restrictions were matched on."""
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
                dims.append(CdrDimension(type=kind, volume=_q(val, LEVEL_STEP)))
        # The representative power and current the engine matched restrictions on (parking: 0), as published.
        for kind, val in ((T.POWER, p.power_kw), (T.CURRENT, p.current_a)):
            if val is not None and not p.is_reservation:
                dims.append(CdrDimension(type=kind, volume=_q(val, LEVEL_STEP)))
        if not dims:
            dims.append(CdrDimension(type=T.TIME, volume=ZERO))
        out.append(
            ChargingPeriod(
                start_date_time=p.start, dimensions=dims, tariff_id=tariff_ids[i] if tariff_ids else None
            )
        )
    return out
