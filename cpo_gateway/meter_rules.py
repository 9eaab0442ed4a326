"""The pure rules for meter data, the same for both OCPP versions (no database, no clock).

* **Rows**: the samples of a message become meter value rows; a 1.6 ``SignedData`` sample is merged into the
  plain sample with the same key.
* **Energy**: a session's energy is the sum of its register's forward steps (meter start, samples, meter stop,
  by the charger's timestamps); a register that goes backwards is a reset (flag ``METER_RESET``) and counts
  from zero; a missing meter stop is the last register reading (flag ``METER_STOP_MISSING``); a step back of
  at most :data:`RESET_TOLERANCE_WH` is rounding, not a reset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from cpo_gateway.events import Sample

UNKNOWN_TRANSACTION = "UNKNOWN_TRANSACTION"
METER_RESET = "METER_RESET"
METER_STOP_MISSING = "METER_STOP_MISSING"
NO_METER_DATA = "NO_METER_DATA"
END_BEFORE_START = "END_BEFORE_START"
ENERGY_FLAGS = (METER_RESET, METER_STOP_MISSING, NO_METER_DATA)
"""The flags :func:`compute_energy` decides; recomputing the energy replaces them."""
RESET_TOLERANCE_WH = Decimal(10)
"""A register that goes back by at most this much is rounding (e.g. integer meterStop after a decimal
sample), not a reset."""

Reading = tuple[datetime, Decimal]
"""One register reading: the charger's timestamp and the register in Wh."""


def sample_rows(session_id: int, samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """Meter value rows of a session; a 1.6 SignedData sample is merged into the plain sample with the same
    key. Without one (the usual case) every sample is a row: a repeated key is skipped by the insert's
    *on conflict do nothing*, keeping the first, as the merge would."""
    if not isinstance(samples, tuple):
        samples = tuple(samples)
    base = {"session_id": session_id}
    for smp in samples:
        if smp.unit == "SignedData":
            return merged_rows(base, samples)
    return [_row(base, smp) for smp in samples]


def _row(base: dict[str, Any], smp: Sample) -> dict[str, Any]:
    """A meter value row: ``base`` (whose series it belongs to) and the sample's own fields, which are named
    as the columns."""
    return {**base, **smp._asdict()}


def merged_rows(base: dict[str, Any], samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """One row per sample key (time, measurand, phase, location, context), each ``base`` plus the sample:
    the first plain sample of a key wins, and a ``SignedData`` sample gives its signature to the plain sample
    of its key (or is a row of its own, value 0, when there is none)."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    signed_only: list[tuple[tuple[Any, ...], Sample]] = []
    for smp in samples:
        key = (smp.timestamp, smp.measurand, smp.phase, smp.location, smp.context)
        if smp.unit == "SignedData":
            signed_only.append((key, smp))
            continue
        row = rows.get(key)
        if row is None:
            rows[key] = _row(base, smp)
        elif smp.signed_data and not row["signed_data"]:
            row["signed_data"] = smp.signed_data
    for key, smp in signed_only:
        row = rows.get(key)
        if row is not None and not row["signed_data"]:
            row["signed_data"] = smp.signed_data
        elif row is None:
            rows[key] = _row(base, smp._replace(unit="SignedData", value=Decimal(0)))
    return list(rows.values())


def compute_energy(
    meter_start: Decimal | None,
    start_time: datetime,
    meter_stop: Decimal | None,
    end_time: datetime | None,
    readings: list[Reading],
) -> tuple[Decimal, Decimal | None, list[str]]:
    """(energy Wh, effective meter stop, flags) from the register readings (charger timestamps)."""
    flags: list[str] = []
    points: list[tuple[datetime, int, Decimal]] = [(ts, 1, wh) for ts, wh in readings]
    if meter_start is not None:
        points.append((start_time, 0, meter_start))
    if meter_stop is not None and end_time is not None:
        points.append((end_time, 2, meter_stop))
    points.sort(key=lambda p: (p[0], p[1]))
    if meter_stop is None:
        if points:
            meter_stop = points[-1][2]
            flags.append(METER_STOP_MISSING)
        else:
            flags.append(NO_METER_DATA)
    energy = Decimal(0)
    previous: Decimal | None = None
    for _ts, _order, wh in points:
        if previous is not None:
            if wh >= previous:
                energy += wh - previous
            elif previous - wh <= RESET_TOLERANCE_WH:
                continue  # rounding between integer meterStart/Stop and decimal samples: not a reset
            else:
                energy += wh
                if METER_RESET not in flags:
                    flags.append(METER_RESET)
        previous = wh
    return energy, meter_stop, flags


class RegisterRow(NamedTuple):
    """A stored energy register sample of a session, as :func:`register_readings` reads it."""

    timestamp: datetime
    value: Decimal
    unit: str
    context: str
    signed_data: str | None


def register_readings(rows: Sequence[RegisterRow]) -> tuple[list[Reading], str | None]:
    """The readings in Wh (Wh and kWh rows; other units are not energy) and the signed meter data to keep:
    the last signed ``Transaction.End`` sample's, else the last signed sample's, else None."""
    readings: list[Reading] = []
    signed: str | None = None
    signed_end: str | None = None
    for row in rows:
        if row.unit == "Wh":
            readings.append((row.timestamp, row.value))
        elif row.unit == "kWh":
            readings.append((row.timestamp, row.value * 1000))
        if row.signed_data:
            signed = row.signed_data
            if row.context == "Transaction.End":
                signed_end = row.signed_data
    return readings, signed_end or signed
