"""Column types that keep the hub's standards in the database: exact money and aware UTC time.

* :class:`Amount` stores :class:`~decimal.Decimal` exactly on every backend: ``NUMERIC`` on PostgreSQL,
  canonical text on SQLite (whose NUMERIC affinity would turn it into a float). Floats are refused on the way in.
* :class:`UTCDateTime` accepts only aware datetimes, stores UTC, and hands back aware UTC on every backend.
* :data:`JSONDoc` is JSON, JSONB on PostgreSQL.
* :data:`JSONText` is JSON kept as its text on every backend (``json`` on PostgreSQL, not ``jsonb``).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Enum, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from kernel.money import to_decimal

JSONDoc = JSON().with_variant(JSONB(), "postgresql")
"""A JSON document column (JSONB on PostgreSQL)."""

JSONText = JSON()
"""A write-once JSON document kept as the text it was written as (PostgreSQL ``json``): never queried
inside, so there is nothing to gain from ``jsonb``'s binary form, and storing the text is several times
cheaper than building it (an issued invoice's document: 3.5 s of each 250,000-CDR batch of the monthly job as
``jsonb``, 1.2 s as ``json``; docs/benchmarks.md)."""

BigID = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit surrogate key that still auto-increments on SQLite."""


def enum_column(enum_cls: type[enum.Enum], length: int = 16) -> Enum:
    """A portable enum column (VARCHAR + CHECK) that stores the members' values, not their names."""
    return Enum(
        enum_cls,
        native_enum=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def canonical_decimal(value: Decimal) -> Decimal:
    """The same number without trailing zeros (and never in exponent form), so both backends agree."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


class Amount(TypeDecorator[Decimal]):
    """An exact decimal (money, energy). NUMERIC(20, 6) on PostgreSQL, text on SQLite;
    read back without trailing zeros on both (``150.00`` is stored and read as ``150``)."""

    impl = Numeric(20, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(20, 6, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        dec = to_decimal(value)
        if dialect.name == "sqlite":
            return format(dec, "f")
        return dec

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):  # pragma: no cover - a backend that lost exactness
            raise TypeError("database returned a float for an exact amount")
        return canonical_decimal(value if isinstance(value, Decimal) else Decimal(value))


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, always aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; use aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
