"""Price what you publish: charging periods in the precision their OCPI form states (issue 12, T5).

A CDR's ``charging_periods`` state instants to the millisecond (an OCPI DateTime is string(25)), ENERGY in kWh
with 6 decimals and POWER / CURRENT with 3 (:func:`tariffs.core.ocpi_periods.to_ocpi`). Periods cut inside a
millisecond (an energy threshold reached at a microsecond) published as they are would be read back with other
durations and energies, and the CDR would not re-price to its own total. So
:func:`tariffs.core.engine.price_session` prices every session in its published form (:func:`publishable`):

* every boundary inside the session rounded **up** to a whole millisecond (as the tariff versions' bounds in
  the CDR, :func:`tariffs.core.render.publishable_tariff`: a version or threshold that starts inside a
  millisecond is in force from the published period on); a period that becomes zero-length gives its volumes
  to the next period (to the previous one when it is last), as the OCPI reader does. The outer bounds (the
  session's start and end, a reservation's start) are kept: they are the CDR's own start and end (a charger
  stamps milliseconds; a reservation made by the hub's clock may have microseconds, which an OCPI DateTime
  cannot state, so such a CDR may re-price a sub-millisecond differently);
* energy rounded on the cumulative series to 0.001 Wh (1e-6 kWh), so the periods add up to the rounded total;
* charging, parking and reservation seconds follow the new boundaries, in their proportion;
* the representative power (kW) and current (A) rounded to 3 decimals.

Idempotent: the published form of a published form is itself (periods read back from OCPI are unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from tariffs.core.charging_periods import ZERO, Period, fold_zero_length, seconds_between

ENERGY_STEP_WH = Decimal("0.001")
"""1e-6 kWh: the precision of a published ENERGY volume."""
LEVEL_STEP = Decimal("0.001")
"""3 decimals: the precision of a published POWER (kW) and CURRENT (A)."""


def published_instant(instant: datetime) -> datetime:
    """``instant`` rounded up to a whole millisecond (what an OCPI DateTime states)."""
    extra = instant.microsecond % 1000
    return instant if not extra else instant + timedelta(microseconds=1000 - extra)


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
    last = max(i for i, x in enumerate(parts) if x)
    out: list[Decimal] = []
    left = fill
    for i, x in enumerate(parts):
        part = left if i == last else (fill * x / before if x else ZERO)
        out.append(part)
        left -= part
    return out[0], out[1], out[2]


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
    return fold_zero_length(out)
