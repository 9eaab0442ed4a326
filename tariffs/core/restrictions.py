"""Evaluating OCPI TariffRestrictions at one moment of a session, on the location's local wall clock.

A restriction is compiled once (:func:`compile_restrictions`) into plain integers/Decimals and then evaluated
against a :class:`Moment`: the local time (IANA zone, DST-correct because it is derived from the UTC instant),
the energy charged so far, the session duration so far, the power/current of the period and whether the
moment is part of a reservation. All set fields must match (logical AND).

Semantics (see docs/tariffs.md):

* ``start_time``/``end_time``: ``start <= t < end``; when ``end < start`` the window wraps past midnight;
  ``end_time = 00:00`` means end of day; only ``start_time``: from then until midnight; only ``end_time``:
  from midnight until then; ``start == end``: the whole day. Evaluated on the local wall clock, so on a DST
  day a window follows the clock (an hour that does not exist is never inside, a repeated hour is twice).
* ``start_date`` inclusive, ``end_date`` exclusive, local dates.
* ``min_kwh`` inclusive, ``max_kwh`` exclusive, on energy charged in the session *before* the moment.
* ``min_duration`` inclusive, ``max_duration`` exclusive, on seconds since the session start.
* ``min_power``/``min_current`` inclusive, ``max_power``/``max_current`` exclusive, on the period's
  representative power (kW) / current (A); when unknown the restriction does not match.
* ``day_of_week``: the local weekday.
* ``reservation``: an element with ``RESERVATION`` applies only to reservation time, one with
  ``RESERVATION_EXPIRES`` only to reservations that expired; an element without it never to reservation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from tariffs.core.tariff_document import TariffRestrictions

RESERVATION = "RESERVATION"
RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


@dataclass(frozen=True, slots=True)
class Moment:
    """What restrictions look at: the start of a charging period."""

    local: datetime  # local wall-clock time at the location (aware, in the location's zone)
    energy_wh: Decimal = Decimal(0)  # energy charged in the session before this moment, Wh
    elapsed_s: Decimal = Decimal(0)  # seconds since session start
    power_kw: Decimal | None = None
    current_a: Decimal | None = None
    reservation: str | None = None  # None, RESERVATION or RESERVATION_EXPIRES


def _minutes(hhmm: str | None) -> int | None:
    if hhmm is None:
        return None
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _date(text: str | None) -> int | None:
    return None if text is None else date.fromisoformat(text).toordinal()


@dataclass(frozen=True, slots=True)
class CompiledRestrictions:
    """A TariffRestrictions reduced to numbers; ``None`` fields are unrestricted."""

    start_min: int | None = None
    end_min: int | None = None
    start_date: int | None = None  # proleptic ordinal
    end_date: int | None = None
    min_wh: Decimal | None = None
    max_wh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    days: frozenset[int] | None = None
    reservation: str | None = None

    def in_time_window(self, minute_of_day: int) -> bool:
        start, end = self.start_min, self.end_min
        if start is None:
            return end is None or end == 0 or minute_of_day < end
        if end is None or (end == 0 and start > 0):
            return minute_of_day >= start
        if start == end:
            return True
        if start < end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end

    def matches(self, m: Moment) -> bool:
        """True when every set restriction holds at ``m``."""
        if self.reservation is None:
            if m.reservation is not None:
                return False
        elif self.reservation == RESERVATION_EXPIRES:
            if m.reservation != RESERVATION_EXPIRES:
                return False
        elif m.reservation is None:
            return False
        local = m.local
        if (self.start_min is not None or self.end_min is not None) and not self.in_time_window(
            local.hour * 60 + local.minute
        ):
            return False
        if self.days is not None and local.weekday() not in self.days:
            return False
        if self.start_date is not None or self.end_date is not None:
            day = local.toordinal()
            if self.start_date is not None and day < self.start_date:
                return False
            if self.end_date is not None and day >= self.end_date:
                return False
        if self.min_wh is not None and m.energy_wh < self.min_wh:
            return False
        if self.max_wh is not None and m.energy_wh >= self.max_wh:
            return False
        if self.min_duration is not None and m.elapsed_s < self.min_duration:
            return False
        if self.max_duration is not None and m.elapsed_s >= self.max_duration:
            return False
        if self.min_power is not None and (m.power_kw is None or m.power_kw < self.min_power):
            return False
        if self.max_power is not None and (m.power_kw is None or m.power_kw >= self.max_power):
            return False
        if self.min_current is not None and (m.current_a is None or m.current_a < self.min_current):
            return False
        return not (self.max_current is not None and (m.current_a is None or m.current_a >= self.max_current))

    # --- what the period builder needs to know to cut periods at every boundary ---

    def clock_minutes(self) -> set[int]:
        """Local times of day (minutes) where this restriction may switch."""
        return {x for x in (self.start_min, self.end_min) if x is not None}

    def energy_thresholds_wh(self) -> set[Decimal]:
        return {x for x in (self.min_wh, self.max_wh) if x is not None}

    def duration_thresholds_s(self) -> set[int]:
        return {x for x in (self.min_duration, self.max_duration) if x is not None}

    def power_thresholds_kw(self) -> set[Decimal]:
        return {x for x in (self.min_power, self.max_power) if x is not None}

    def current_thresholds_a(self) -> set[Decimal]:
        return {x for x in (self.min_current, self.max_current) if x is not None}


UNRESTRICTED = CompiledRestrictions()


def compile_restrictions(r: TariffRestrictions | None) -> CompiledRestrictions:
    """Reduce an OCPI TariffRestrictions to a :class:`CompiledRestrictions`."""
    if r is None:
        return UNRESTRICTED
    return CompiledRestrictions(
        start_min=_minutes(r.start_time),
        end_min=_minutes(r.end_time),
        start_date=_date(r.start_date),
        end_date=_date(r.end_date),
        min_wh=None if r.min_kwh is None else r.min_kwh * 1000,
        max_wh=None if r.max_kwh is None else r.max_kwh * 1000,
        min_current=r.min_current,
        max_current=r.max_current,
        min_power=r.min_power,
        max_power=r.max_power,
        min_duration=r.min_duration,
        max_duration=r.max_duration,
        days=frozenset(d.iso_index for d in r.day_of_week) if r.day_of_week else None,
        reservation=None if r.reservation is None else r.reservation.value,
    )


def restriction_matches(r: TariffRestrictions | None, moment: Moment) -> bool:
    """Convenience: evaluate an OCPI TariffRestrictions (uncompiled) at ``moment``."""
    return compile_restrictions(r).matches(moment)
