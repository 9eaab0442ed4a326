"""Insert-or-ignore in the database's dialect: how the gateway stores what a charger may send twice.

Chargers retry and replay, so meter values and the charger event log are inserted with *on conflict do
nothing* on their natural key: a repeated row adds nothing and the order of arrival does not matter.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.sql.dml import Insert

from kernel.db.base import Base
from kernel.db.engine import Database


def insert_ignoring_duplicates(db: Database, model: type[Base]) -> Insert:
    """``INSERT INTO <model's table> ... ON CONFLICT DO NOTHING`` for ``db``'s dialect."""
    table = model.__table__
    assert isinstance(table, Table), f"{model.__name__} is mapped to a table"
    insert = sqlite_insert(table) if db.is_sqlite else pg_insert(table)
    return insert.on_conflict_do_nothing()


def rows_written(result: Result[Any]) -> int:
    """How many rows an INSERT or UPDATE wrote (0 when the driver cannot tell)."""
    assert isinstance(result, CursorResult), "an INSERT or UPDATE returns a cursor result"
    return max(result.rowcount or 0, 0)
