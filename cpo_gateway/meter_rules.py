"""The pure rules for meter data, the same for both OCPP versions (no database, no clock).

* **Rows**: the samples of a message become meter value rows; a 1.6 ``SignedData`` sample is merged into the
  plain sample with the same key.
* **Energy**: what a reading means (units, phases, signatures, resets, Begin/End) is
  :mod:`kernel.meter_reading`'s (the session's energy is :func:`kernel.meter_reading.session_energy`);
  :func:`register_readings` reads the stored register rows for it and picks the signed data to keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from cpo_gateway.events import ENERGY_REGISTER, Sample
from kernel.meter_reading import (
    METER_RESET,
    METER_STOP_MISSING,
    NO_METER_DATA,
    SIGNED_UNIT,
    Reading,
)
from kernel.meter_reading import register_readings as reading_rows

__all__ = [
    "END_BEFORE_START",
    "ENERGY_FLAGS",
    "UNKNOWN_TRANSACTION",
    "RegisterRow",
    "merged_rows",
    "register_readings",
    "sample_rows",
    "unique_rows",
]

UNKNOWN_TRANSACTION = "UNKNOWN_TRANSACTION"
END_BEFORE_START = "END_BEFORE_START"
ENERGY_FLAGS = (METER_RESET, METER_STOP_MISSING, NO_METER_DATA)
"""The flags :func:`kernel.meter_reading.session_energy` decides; recomputing the energy replaces them."""


def sample_rows(session_id: int, samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """Meter value rows of a session; a 1.6 SignedData sample is merged into the plain sample with the same
    key. Without one (the usual case) every sample is a row: a key stored already is merged by the insert
    (:data:`cpo_gateway.meter_sql.ON_CONFLICT`): a plain value replaces a signed-only placeholder, a signature
    joins a plain value, else the first stays."""
    if not isinstance(samples, tuple):
        samples = tuple(samples)
    base = {"session_id": session_id}
    for smp in samples:
        if smp.unit == SIGNED_UNIT:
            return merged_rows(base, samples)
    return [_row(base, smp) for smp in samples]


def _row(base: dict[str, Any], smp: Sample) -> dict[str, Any]:
    """A meter value row: ``base`` (whose series it belongs to) and the sample's own fields, which are named
    as the columns."""
    return {**base, **smp._asdict()}


def merged_rows(base: dict[str, Any], samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """One row per sample key (time, measurand, phase, location, context), each ``base`` plus the sample:
    the first plain sample of a key wins, and a ``SignedData`` sample gives its signature to the plain sample
    of its key (or is a row of its own when there is none: unit ``SignedData``, value 0 as a placeholder that
    :mod:`kernel.meter_reading` never reads as a value, and that a later plain sample of the key replaces)."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    signed_only: list[tuple[tuple[Any, ...], Sample]] = []
    for smp in samples:
        key = (smp.timestamp, smp.measurand, smp.phase, smp.location, smp.context)
        if smp.unit == SIGNED_UNIT:
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
            rows[key] = _row(base, smp._replace(unit=SIGNED_UNIT, value=Decimal(0)))
    return list(rows.values())


_KEY = ("session_id", "timestamp", "measurand", "phase", "location", "context")


def unique_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with one per stored key (session, time, measurand, phase, location, context), as the store's
    upsert would leave them: the first plain value of a key wins over a signed-only placeholder (unit
    ``SignedData``) and keeps the first signature of the key. Rows without repeats are returned as they are."""
    keys = [tuple(r[c] for c in _KEY) for r in rows]
    if len(set(keys)) == len(keys):
        return rows
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, r in zip(keys, rows, strict=True):
        kept = out.get(key)
        if kept is None:
            out[key] = r
            continue
        if kept["unit"] == SIGNED_UNIT and r["unit"] != SIGNED_UNIT:
            out[key] = {**r, "signed_data": kept.get("signed_data") or r.get("signed_data")}
        elif not kept.get("signed_data") and r.get("signed_data"):
            out[key] = {**kept, "signed_data": r["signed_data"]}
    return list(out.values())


class RegisterRow(NamedTuple):
    """A stored energy register sample of a session, as :func:`register_readings` reads it."""

    timestamp: datetime
    value: Decimal
    unit: str
    context: str
    signed_data: str | None


def register_readings(rows: Sequence[RegisterRow]) -> tuple[list[Reading], str | None]:
    """The readings in Wh (:func:`kernel.meter_reading.register_readings`: a signature is never a reading)
    and the signed meter data to keep: the last signed ``Transaction.End`` sample's, else the last signed
    sample's, else None."""
    signed: str | None = None
    signed_end: str | None = None
    for row in rows:
        if row.signed_data:
            signed = row.signed_data
            if row.context == "Transaction.End":
                signed_end = row.signed_data
    return reading_rows([_Register(*row[:4]) for row in rows]), signed_end or signed


class _Register(NamedTuple):
    timestamp: datetime
    value: Decimal
    unit: str
    context: str
    measurand: str = ENERGY_REGISTER
    phase: str = ""
