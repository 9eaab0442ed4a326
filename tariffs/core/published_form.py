"""Price what you publish: charging periods in the precision their OCPI form states (issue 12, T5).

A CDR's ``charging_periods`` state instants to the millisecond (an OCPI DateTime is string(25)), ENERGY in kWh
and TIME / PARKING_TIME / RESERVATION_TIME in hours with 4 decimals (OCPI types: "numbers use 4 decimals")
and POWER / CURRENT with 3 (:func:`tariffs.core.ocpi_periods.to_ocpi`). Periods cut inside a millisecond (an
energy threshold reached at a microsecond) published as they are would be read back with other durations and
energies, and the CDR would not re-price to its own total. So
:func:`tariffs.core.engine.price_session` prices every session in its published form (:func:`publishable`):

* every boundary inside the session rounded **up** to a whole millisecond (as the tariff versions' bounds in
  the CDR, :func:`tariffs.core.render.publishable_tariff`: a version or threshold that starts inside a
  millisecond is in force from the published period on); a period that becomes zero-length gives its volumes
  to the next period (to the previous one when it is last), as the OCPI reader does. The outer bounds (the
  session's start and end, a reservation's start) are kept: they are the CDR's own start and end (a charger
  stamps milliseconds; a reservation made by the hub's clock may have microseconds, which an OCPI DateTime
  cannot state, so such a CDR may re-price a sub-millisecond differently);
* energy rounded on the cumulative series to 0.1 Wh (1e-4 kWh), so the periods add up to the rounded total;
* charging, parking and reservation seconds follow the new boundaries, in their proportion, and are then what
  their published hours (4 decimals) are read back as (:func:`stated_times`, the OCPI reader's rule): a period
  shorter than half a step (0.18 s) states TIME 0 and is read back as its duration, not as nothing;
* the representative power (kW) and current (A) rounded to 3 decimals.

Idempotent: the published form of a published form is itself (periods read back from OCPI are unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from tariffs.core.charging_periods import ZERO, Period, fold_zero_length, seconds_between

QUANTITY_STEP = Decimal("0.0001")
"""4 decimals: the precision of a published quantity in kWh or hours (OCPI types: "Unless mentioned otherwise,
numbers use 4 decimals"): the CDR's ``total_energy``, ``total_time``, ``total_parking_time`` and the
ENERGY / TIME / PARKING_TIME / RESERVATION_TIME volumes."""
ENERGY_STEP_WH = Decimal("0.1")
"""1e-4 kWh: the precision of a published ENERGY volume (OCPI numbers have 4 decimals)."""
LEVEL_STEP = Decimal("0.001")
"""3 decimals: the precision of a published POWER (kW) and CURRENT (A)."""


def published_instant(instant: datetime) -> datetime:
    """``instant`` rounded up to a whole millisecond (what an OCPI DateTime states)."""
    extra = instant.microsecond % 1000
    return instant if not extra else instant + timedelta(microseconds=1000 - extra)


def published_quantity(value: Decimal) -> Decimal:
    """A quantity in kWh or hours as published (4 decimals, half up)."""
    return value.quantize(QUANTITY_STEP, rounding=ROUND_HALF_UP)


_H = Decimal(3600)
HALF_STEP_H = QUANTITY_STEP / 2
"""Half the 1e-4 h a TIME / PARKING_TIME / RESERVATION_TIME volume is published to."""


def stated_times(
    hours: tuple[Decimal | None, Decimal | None, Decimal | None], duration_s: Decimal
) -> tuple[Decimal, Decimal, Decimal] | None:
    """Charging, parking and reservation seconds of a period whose TIME, PARKING_TIME and RESERVATION_TIME
    hours (None: not stated) fill its ``duration_s`` within the published rounding (0.5e-4 h per stated
    dimension, a stated 0 included): the exact duration split in the stated proportion, the remainder on the
    last one stated non-zero (on the last one stated when all are 0). None when they do not fill it."""
    stated = [i for i, h in enumerate(hours) if h is not None]
    values = [h or ZERO for h in hours]
    total = sum(values, ZERO)
    if not stated or min(values) < 0 or abs(total - duration_s / _H) > HALF_STEP_H * len(stated):
        return None
    last = max(i for i in stated if values[i]) if total else stated[-1]
    return _spread(duration_s, values, last)


def _spread(amount: Decimal, weights: Sequence[Decimal], last: int) -> tuple[Decimal, Decimal, Decimal]:
    """``amount`` split over the three ``weights`` in their proportion, the remainder on index ``last`` (so the
    parts add up to ``amount`` exactly); a weight of 0 gets 0 unless it is ``last``."""
    whole = sum(weights, ZERO)
    out: list[Decimal] = []
    left = amount
    for i, w in enumerate(weights):
        part = left if i == last else (amount * w / whole if w else ZERO)
        out.append(part)
        left -= part
    return out[0], out[1], out[2]


def _as_read_back(p: Period) -> Period:
    """``p`` with the times the OCPI reader reads back from their published hours (a dimension is stated when
    its seconds are not 0, :func:`tariffs.core.ocpi_periods.to_ocpi`); unchanged when they do not fill it."""

    def hours(seconds: Decimal) -> Decimal | None:
        return published_quantity(seconds / _H) if seconds else None

    read = stated_times((hours(p.time_s), hours(p.parking_s), hours(p.reservation_s)), p.duration_s)
    if read is None:
        return p
    return replace(p, time_s=read[0], parking_s=read[1], reservation_s=read[2])


def published_level(value: Decimal | None) -> Decimal | None:
    """A power or current as published (3 decimals)."""
    return None if value is None else value.quantize(LEVEL_STEP, rounding=ROUND_HALF_UP)


def _times(p: Period, duration: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """Charging, parking and reservation seconds of ``p`` over its new ``duration``, in their proportion (the
    remainder on the last one that is set, so they still fill the period when they filled it)."""
    parts = (p.time_s, p.parking_s, p.reservation_s)
    before = sum(parts, ZERO)
    if not before:
        return ZERO, ZERO, ZERO
    old = p.duration_s
    if duration == old or not old:
        return parts  # unchanged boundaries (or a zero-length period's volumes, kept as they are)
    fill = duration if before == old else before * duration / old
    return _spread(fill, parts, max(i for i, x in enumerate(parts) if x))


def publishable(
    periods: Sequence[Period], session_start: datetime | None = None, session_end: datetime | None = None
) -> list[Period]:
    """``periods`` (chronological) in their published precision; see the module docstring. The outer bounds
    (``session_start``, ``session_end``, the first period's start, the last one's end) are kept as they are:
    the CDR states them as its own start and end."""
    keep = {t for t in (session_start, session_end) if t is not None}
    if periods:
        keep |= {periods[0].start, periods[-1].end}

    def bound(t: datetime) -> datetime:
        return t if t in keep else published_instant(t)

    out: list[Period] = []
    exact = published = ZERO
    for p in periods:
        start, end = bound(p.start), bound(p.end)
        exact += p.energy_wh
        energy = exact.quantize(ENERGY_STEP_WH, rounding=ROUND_HALF_UP) - published
        published += energy
        duration = seconds_between(start, end) if end > start else ZERO
        time_s, parking_s, reservation_s = _times(p, duration)
        q = replace(
            p,
            start=start,
            end=max(start, end),
            energy_wh=energy,
            time_s=time_s,
            parking_s=parking_s,
            reservation_s=reservation_s,
            power_kw=published_level(p.power_kw),
            current_a=published_level(p.current_a),
        )
        out.append(q)
    return [_as_read_back(q) for q in fold_zero_length(out)]
