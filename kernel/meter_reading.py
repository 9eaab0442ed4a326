"""One meaning of a meter reading, for every stage that reads meter values (pure: no database, no clock).

The gateway (a session's energy), rating (the cumulative series the tariff engine cuts into periods) and the
OCPI session object (its charging periods) all read stored meter rows through this module:

* **Units**: energy in Wh (``Wh``, ``kWh``), power in W (``W``, ``kW``), current in A (``A``); an OCPP 2.0.1
  ``unitOfMeasure.multiplier`` is applied by :func:`scaled` (the 2.0.1 parser does, before storing).
* **Values**: a row is a value unless it is a signature: a 1.6 ``format: SignedData`` sample is stored with unit
  ``SignedData`` (value 0 as a placeholder) and is never a reading; a 2.0.1 value with a ``signedMeterValue`` is
  a value (its signature rides along).
* **Phases**: a phase-less value is the overall value (OCPP: "When phase is absent, the measured value is
  interpreted as an overall value"); without one, the sum of the phases ``L1``, ``L2``, ``L3`` (or ``L1-N`` ..
  ``L3-N``) at that instant; line-to-line and ``N`` values are never summed.
* **Begin / End**: a ``Transaction.Begin`` reading is the session's baseline *at* its start, whatever its
  timestamp (chargers stamp it a few ms before the Started event); any reading before the start only gives
  the baseline; a ``Transaction.End`` reading, or one after the end, is the reading at the end.
* **Resets**: a register that goes back by more than :data:`RESET_TOLERANCE_WH` is a reset and counts again
  from zero (flag ``METER_RESET``); a step back of at most that is rounding and counts as no energy.
* **Current**: between two measurements the current is linear, after the last one it is held; before the
  first it is unknown (a current restriction does not match unknown current).
* **Outputs**: :func:`session_energy` (energy, effective meter stop, flags), :func:`cumulative_series`
  (energy since the start with power and current, ending exactly at the session's energy) and
  :func:`interval_deltas` (the energy of each interval: never negative, summing to the series' last value).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, Protocol

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
SIGNED_UNIT = "SignedData"
"""The unit a 1.6 signed-only sample is stored with: a signature, never a value."""
BEGIN = "Transaction.Begin"
END = "Transaction.End"

METER_RESET = "METER_RESET"
METER_STOP_MISSING = "METER_STOP_MISSING"
NO_METER_DATA = "NO_METER_DATA"
RESET_TOLERANCE_WH = Decimal(10)
"""A register that goes back by at most this much is rounding (e.g. integer meterStop after a decimal
sample), not a reset."""

PHASES = (("L1", "L2", "L3"), ("L1-N", "L2-N", "L3-N"))
"""The phase sets whose sum is the overall value when no phase-less value is given."""

_TO_BASE = {
    "wh": (ENERGY_REGISTER, Decimal(1)),
    "kwh": (ENERGY_REGISTER, Decimal(1000)),
    "w": (POWER, Decimal(1)),
    "kw": (POWER, Decimal(1000)),
    "a": (CURRENT, Decimal(1)),
}
_ZERO = Decimal(0)


class MeterRow(Protocol):
    """What this module reads of a meter value (a stored row, or a gateway sample)."""

    @property
    def timestamp(self) -> datetime: ...
    @property
    def measurand(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def value(self) -> Decimal: ...
    @property
    def context(self) -> str: ...


class Reading(NamedTuple):
    """One register reading in Wh at the charger's timestamp, with its reading context."""

    timestamp: datetime
    wh: Decimal
    context: str = "Sample.Periodic"


class SeriesPoint(NamedTuple):
    """A point of the cumulative series: energy (Wh) since the session start; power (W) and current (A) when
    measured at that instant."""

    timestamp: datetime
    energy_wh: Decimal
    power_w: Decimal | None = None
    current_a: Decimal | None = None


def scaled(value: Decimal, multiplier: int) -> Decimal:
    """A 2.0.1 value with its ``unitOfMeasure.multiplier`` (a power of ten) applied."""
    return value.scaleb(multiplier) if multiplier else value


def is_value(unit: str, value: Decimal) -> bool:
    """Whether a stored row is a reading: not a signature (unit ``SignedData``) and a finite number."""
    return unit != SIGNED_UNIT and isinstance(value, Decimal) and value.is_finite()


def in_base_unit(measurand: str, unit: str, value: Decimal) -> Decimal | None:
    """The value in the measurand's base unit (Wh, W, A), or None when it is not a value of that measurand
    (a signature, another unit)."""
    if not is_value(unit, value):
        return None
    if measurand == ENERGY_REGISTER and not unit:
        return value  # OCPP's default unit for energy is Wh
    base = _TO_BASE.get(unit.lower())
    if base is None or base[0] != measurand:
        return None
    return value * base[1] if base[1] != 1 else value


def energy_wh(measurand: str, phase: str, unit: str, value: Decimal) -> Decimal | None:
    """The register in Wh when this is an overall (phase-less) energy register reading, else None."""
    if measurand != ENERGY_REGISTER or phase:
        return None
    return in_base_unit(measurand, unit, value)


def overall(values: dict[str, Decimal]) -> Decimal | None:
    """The overall value of one instant from its values by phase (``""`` = phase-less): the phase-less value,
    else the sum of a complete phase set (see :data:`PHASES`), else None."""
    if "" in values:
        return values[""]
    for phases in PHASES:
        if all(p in values for p in phases):
            return sum((values[p] for p in phases), _ZERO)
    return None


def _by_instant(rows: Iterable[MeterRow], measurand: str) -> dict[tuple[datetime, str], Decimal]:
    """The overall value of ``measurand`` per (timestamp, context)."""
    parts: dict[tuple[datetime, str], dict[str, Decimal]] = {}
    for row in rows:
        if row.measurand != measurand:
            continue
        v = in_base_unit(measurand, row.unit, row.value)
        if v is None:
            continue
        parts.setdefault((row.timestamp, row.context or ""), {}).setdefault(row.phase or "", v)
    out: dict[tuple[datetime, str], Decimal] = {}
    for key, by_phase in parts.items():
        v = overall(by_phase)
        if v is not None:
            out[key] = v
    return out


def register_readings(rows: Iterable[MeterRow]) -> list[Reading]:
    """The energy register readings (Wh) of meter rows, by charger time; signatures and other measurands
    are not readings."""
    return [Reading(ts, wh, ctx) for (ts, ctx), wh in sorted(_by_instant(rows, ENERGY_REGISTER).items())]


def instant_series(rows: Iterable[MeterRow], measurand: str) -> dict[datetime, Decimal]:
    """The overall value of ``measurand`` (power W, current A ...) per timestamp."""
    return {ts: v for (ts, _ctx), v in sorted(_by_instant(rows, measurand).items())}


def _order(reading: Reading, start: datetime | None, end: datetime | None) -> tuple[datetime, int]:
    """Where a reading sits in the session: Begin (or before the start) at the start, End (or after the
    end) at the end, others at their own time."""
    ts = reading.timestamp
    if start is not None and (reading.context == BEGIN or ts < start):
        return start, 0
    if end is not None and (reading.context == END or ts > end):
        return end, 2
    return ts, 1


def _points(
    meter_start: Decimal | None,
    start: datetime,
    meter_stop: Decimal | None,
    end: datetime | None,
    readings: Sequence[Reading],
) -> list[tuple[datetime, int, Decimal]]:
    points: list[tuple[datetime, int, Decimal]] = [(*_order(r, start, end), r.wh) for r in readings]
    if meter_start is not None:
        points.append((start, -1, meter_start))
    if meter_stop is not None and end is not None:
        points.append((end, 3, meter_stop))
    points.sort(key=lambda p: (p[0], p[1]))
    return points


def _accumulate(
    points: Iterable[tuple[datetime, int, Decimal]],
) -> tuple[list[tuple[datetime, Decimal]], bool]:
    """The cumulative energy at each point (forward steps; a reset counts from zero; a step back within the
    tolerance is none) and whether there was a reset."""
    out: list[tuple[datetime, Decimal]] = []
    total = _ZERO
    previous: Decimal | None = None
    reset = False
    for ts, _place, wh in points:
        if previous is not None:
            if wh >= previous:
                total += wh - previous
            elif previous - wh <= RESET_TOLERANCE_WH:
                out.append((ts, total))
                continue  # rounding: the register did not really go back
            else:
                total += wh
                reset = True
        previous = wh
        out.append((ts, total))
    return out, reset


def session_energy(
    meter_start: Decimal | None,
    start_time: datetime,
    meter_stop: Decimal | None,
    end_time: datetime | None,
    readings: Sequence[Reading],
) -> tuple[Decimal, Decimal | None, list[str]]:
    """(energy Wh, effective meter stop, flags) of a session from its meter start/stop and register readings.

    A missing meter stop is the last reading (flag ``METER_STOP_MISSING``; ``NO_METER_DATA`` without any)."""
    flags: list[str] = []
    points = _points(meter_start, start_time, meter_stop, end_time, readings)
    if meter_stop is None:
        if points:
            meter_stop = points[-1][2]
            flags.append(METER_STOP_MISSING)
        else:
            flags.append(NO_METER_DATA)
    cumulative, reset = _accumulate(points)
    if reset:
        flags.append(METER_RESET)
    return (cumulative[-1][1] if cumulative else _ZERO), meter_stop, flags


def cumulative_series(
    rows: Iterable[MeterRow],
    start_time: datetime,
    end_time: datetime | None,
    meter_start: Decimal | None = None,
    energy: Decimal | None = None,
) -> list[SeriesPoint]:
    """The session's energy since its start over time, with power and current where measured.

    Starts at 0 at ``start_time`` (a Begin reading or the last one before the start is the baseline). For an
    ended session the series is capped at ``energy`` (the session's energy as the gateway decided it: the
    series only gives it its shape) and ends exactly at it at ``end_time``."""
    rows = list(rows)
    readings = register_readings(rows)
    power = instant_series(rows, POWER)
    current = instant_series(rows, CURRENT)
    points = _points(meter_start, start_time, None, end_time, readings)
    cumulative, _reset = _accumulate(points)
    raw = {(r.timestamp, r.context): _order(r, start_time, end_time)[0] for r in readings}
    moved = {placed: ts for (ts, _ctx), placed in raw.items()}  # instant in the series -> measured at
    times = list(current)
    series: dict[datetime, SeriesPoint] = {}
    for ts, total in cumulative:
        at = moved.get(ts, ts)
        series[ts] = SeriesPoint(ts, total, power.get(at), current_at(current, at, times))
    out = list(series.values())
    if end_time is not None:
        final = max(energy if energy is not None else (out[-1].energy_wh if out else _ZERO), _ZERO)
        out = [p._replace(energy_wh=min(p.energy_wh, final)) for p in out if p.timestamp < end_time]
        out.append(SeriesPoint(end_time, final))
    if not out or out[0].timestamp > start_time:
        out.insert(0, SeriesPoint(start_time, _ZERO))
    return out


def current_at(
    current: dict[datetime, Decimal], ts: datetime, times: list[datetime] | None = None
) -> Decimal | None:
    """The current (A) at ``ts`` from the measured ones (sorted by time): measured there, else linear between
    the measurements around it, else the last one before it (held); None before the first."""
    if ts in current:
        return current[ts]
    times = list(current) if times is None else times
    i = bisect.bisect_left(times, ts)
    before = times[i - 1] if i > 0 else None
    after = times[i] if i < len(times) else None
    if before is None:
        return None
    if after is None:
        return current[before]
    span = Decimal((after - before).total_seconds())
    part = Decimal((ts - before).total_seconds())
    return current[before] + (current[after] - current[before]) * part / span


def interval_deltas(series: Sequence[SeriesPoint]) -> list[tuple[datetime, datetime, Decimal]]:
    """(start, end, Wh) of each interval between consecutive points of a cumulative series: never negative
    (the series only rises), and they sum to its last value."""
    out: list[tuple[datetime, datetime, Decimal]] = []
    for a, b in itertools.pairwise(series):
        if b.timestamp > a.timestamp:
            out.append((a.timestamp, b.timestamp, max(b.energy_wh - a.energy_wh, _ZERO)))
    return out
