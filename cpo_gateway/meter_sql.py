"""The raw SQL of the meter group commit (:mod:`cpo_gateway.meter_writer`): column order and statements.

SQLite gets one ``executemany`` per statement; PostgreSQL one statement per batch, the rows as arrays through
``unnest`` (the inserts and the running-energy updates commit together). A batch whose rows are all the same
kind of sample (see :func:`uniform_kind`) sends only session, time and value as arrays.
"""

from __future__ import annotations

import operator
from decimal import Decimal
from typing import Any

from kernel.meter_reading import SIGNED_UNIT

MV_COLUMNS = (
    "session_id",
    "timestamp",
    "measurand",
    "phase",
    "location",
    "context",
    "unit",
    "value",
    "signed_data",
)
"""The columns of ``meter_values`` in the order the statements bind them."""
UNIFORM_COLUMNS = ("measurand", "phase", "location", "context", "unit")
"""What makes two samples the same kind (with no signature): a uniform batch sends these once."""

row_values = operator.itemgetter(*MV_COLUMNS)
"""A meter value row's values in :data:`MV_COLUMNS` order."""


def uniform_kind(rows: list[dict[str, Any]]) -> tuple[str, ...] | None:
    """The values of :data:`UNIFORM_COLUMNS` when every row shares them and none is signed, else None."""
    if not rows:
        return None
    first = rows[0]
    kind = (first["measurand"], first["phase"], first["location"], first["context"], first["unit"])
    for r in rows:
        if r["signed_data"] is not None or (
            r["measurand"] != kind[0]
            or r["phase"] != kind[1]
            or r["location"] != kind[2]
            or r["context"] != kind[3]
            or r["unit"] != kind[4]
        ):
            return None
    for value in (r["value"] for r in rows):
        if not isinstance(value, Decimal) or not value.is_finite():
            return None  # the generic path refuses it through the column's own checks
    return kind


ON_CONFLICT = (
    "ON CONFLICT (session_id, timestamp, measurand, phase, location, context) DO UPDATE SET "
    f"value = CASE WHEN meter_values.unit = '{SIGNED_UNIT}' THEN excluded.value ELSE meter_values.value END, "
    f"unit = CASE WHEN meter_values.unit = '{SIGNED_UNIT}' THEN excluded.unit ELSE meter_values.unit END, "
    "signed_data = COALESCE(meter_values.signed_data, excluded.signed_data) "
    f"WHERE (meter_values.unit = '{SIGNED_UNIT}' AND excluded.unit <> '{SIGNED_UNIT}') "
    "OR (meter_values.signed_data IS NULL AND excluded.signed_data IS NOT NULL)"
)
"""A sample whose key is stored already: a plain value replaces a stored 1.6 signed-only placeholder (unit
``SignedData``), a signature is added to a stored plain value without one; otherwise the first one stays
(a resent frame). A PostgreSQL statement may propose each key once only: :func:`cpo_gateway.meter_rules.
unique_rows` merges a batch's repeats first."""

SQLITE_INSERT = (
    f"INSERT INTO meter_values ({', '.join(MV_COLUMNS)}) VALUES ({', '.join('?' for _ in MV_COLUMNS)}) "
    f"{ON_CONFLICT}"
)
SQLITE_UPDATE = "UPDATE sessions SET energy_wh = ?, last_updated = ? WHERE id = ? AND status = 'ACTIVE'"
PG_INSERT = (
    f"INSERT INTO meter_values ({', '.join(MV_COLUMNS)}) SELECT * FROM unnest($1::bigint[], $2::timestamptz[], "
    "$3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::varchar[], $8::numeric[], $9::text[]) "
    f"{ON_CONFLICT}"
)
PG_UPDATE_ENERGY = (
    "UPDATE sessions SET energy_wh = u.energy, last_updated = u.now "
    "FROM unnest(${}::bigint[], ${}::numeric[], ${}::timestamptz[]) AS u(sid, energy, now) "
    "WHERE sessions.id = u.sid AND sessions.status = 'ACTIVE'"
)
PG_INSERT_AND_UPDATE = f"WITH ins AS ({PG_INSERT}) {PG_UPDATE_ENERGY.format(10, 11, 12)}"
# values go as text and are cast by PostgreSQL: cheaper than asyncpg's binary numeric encoding
PG_INSERT_UNIFORM = (
    f"INSERT INTO meter_values (session_id, timestamp, value, {', '.join(UNIFORM_COLUMNS)}) "
    "SELECT u.sid, u.ts, u.v::numeric, $4::varchar, $5::varchar, $6::varchar, $7::varchar, $8::varchar "
    f"FROM unnest($1::bigint[], $2::timestamptz[], $3::text[]) AS u(sid, ts, v) {ON_CONFLICT}"
)
PG_INSERT_UNIFORM_AND_UPDATE = f"WITH ins AS ({PG_INSERT_UNIFORM}) {PG_UPDATE_ENERGY.format(9, 10, 11)}"
