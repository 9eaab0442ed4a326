"""The group-commit writer of meter values: the hot path's raw-SQL batches, one transaction for many chargers.

Meter values of running transactions (:mod:`cpo_gateway.metering`) are queued here; one batch is in flight at
a time and the next one gathers everything that arrives while it commits. A charger is answered only after the
transaction holding its rows committed. The statements are in :mod:`cpo_gateway.meter_sql`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from cpo_gateway.framing import OcppError
from cpo_gateway.meter_rules import unique_rows
from cpo_gateway.meter_sql import (
    MV_COLUMNS,
    PG_INSERT,
    PG_INSERT_AND_UPDATE,
    PG_INSERT_UNIFORM,
    PG_INSERT_UNIFORM_AND_UPDATE,
    SQLITE_INSERT,
    SQLITE_UPDATE,
    row_values,
    uniform_kind,
)
from kernel.db.engine import SQLITE_PRAGMAS, Database
from kernel.models import ChargingSession, MeterValue

log = logging.getLogger(__name__)

MeterRow = dict[str, Any]
"""A ``meter_values`` row, keyed by column (:func:`cpo_gateway.meter_rules.sample_rows` makes them)."""
EnergyUpdate = dict[str, Any]
"""A running-energy refresh of an active session: ``sid``, ``energy`` (Wh) and ``now``."""
Pending = tuple[list[MeterRow], list[EnergyUpdate], asyncio.Future[None]]
"""One ``write`` waiting for its batch: its rows, its updates and the future its caller awaits."""


class MeterWriter:
    """Group commit for the hot path: MeterValues of many chargers are written in one transaction.

    ``write`` returns only after the transaction holding its rows committed, so replies still follow
    durability. One batch is in flight at a time and the next one gathers everything that arrives while it
    commits: under load the batches grow by themselves, and the per-statement and per-commit cost is shared by
    more rows (measured: one batch in flight beats several in parallel, see docs/benchmarks.md)."""

    def __init__(self, db: Database, max_batch: int = 2000) -> None:
        self.db = db
        self.max_batch = max_batch
        self._pg: Any = None  # the writer's own asyncpg connection: no pool bookkeeping per batch
        self._queue: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._procs: dict[str, Any] | None = None
        self._plan: list[tuple[int, Any]] | None = None
        # SQLite: the writer's own connection, used only from its own thread, so a batch is one hop to that
        # thread (BEGIN IMMEDIATE, inserts, updates, COMMIT) instead of one aiosqlite round trip per statement
        self._sqlite_path = _sqlite_file(db)
        self._sqlite: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="meter-writer")

    async def stop(self, timeout: float = 30.0) -> None:
        """Commit the batch in flight and everything queued (chargers are waiting for it), then close."""
        if self._task is not None:
            self._stopping = True
            self._wakeup.set()
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                log.error(
                    "meter writer did not finish within %s s; chargers retry what was not answered", timeout
                )
            self._task = None
        while self._queue:  # written after the writer stopped
            await self._commit(self._take())
        if self._pg is not None:
            with contextlib.suppress(Exception):
                await self._pg.close()
            self._pg = None
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_sqlite)
            self._thread.shutdown(wait=False)
            self._thread = None

    async def write(self, rows: list[MeterRow], session_updates: list[EnergyUpdate]) -> None:
        """Store ``rows`` (replays add nothing) and the running-energy updates; returns once committed. Before
        :meth:`start` (or after :meth:`stop`) this writes at once, in a transaction of its own."""
        if self._task is None:
            await self._flush(rows, session_updates)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((rows, session_updates, fut))
        self._wakeup.set()
        await fut

    def _take(self) -> list[Pending]:
        """The oldest messages, up to ``max_batch`` rows (always at least one message)."""
        count, taken = 0, 0
        for item in self._queue:
            if count >= self.max_batch:
                break
            count += len(item[0])
            taken += 1
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._commit(self._take())
            if self._stopping:
                return

    async def _commit(self, batch: list[Pending]) -> None:
        """Write ``batch`` in one transaction and answer every waiting ``write``: done, or the error.

        When the batch fails on its data (a value the database refuses, a key it rejects) rather than on the
        database being unreachable, each message of it is written again alone (replays add nothing): only the
        message that carries the bad value gets the error (PropertyConstraintViolation), every other charger of
        the batch is stored and answered as if it had been alone."""
        try:
            await self._flush(
                [r for rows, _u, _f in batch for r in rows], [u for _r, upd, _f in batch for u in upd]
            )
        except BaseException as exc:  # the waiting chargers get an error answer (and retry), never silence
            if isinstance(exc, Exception) and is_data_error(exc):
                await self._commit_alone(batch, exc)
                return
            if isinstance(exc, Exception):
                log.exception("meter batch failed")
            error = exc if isinstance(exc, Exception) else ConnectionError("meter batch interrupted")
            for _r, _u, fut in batch:
                if not fut.done():
                    fut.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        else:
            for _r, _u, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _commit_alone(self, batch: list[Pending], exc: Exception) -> None:
        """After ``batch`` failed on its data: each message in a transaction of its own (see :meth:`_commit`)."""
        if len(batch) > 1:
            log.warning(
                "meter batch refused by the database (%s); writing its %d messages one by one",
                type(exc).__name__,
                len(batch),
            )
            for item in batch:
                await self._commit([item])
            return
        _rows, _u, fut = batch[0]
        log.warning("meter values refused by the database: %s", exc)
        if not fut.done():
            fut.set_exception(
                OcppError(
                    "PropertyConstraintViolation",
                    f"sampledValue cannot be stored ({type(exc).__name__}): a value out of range",
                )
            )

    async def _flush(self, rows: list[MeterRow], updates: list[EnergyUpdate]) -> None:
        if self.db.is_sqlite:
            await self._flush_sqlite(rows, updates)
        else:
            await self._flush_pg(rows, updates)

    def _processors(self) -> dict[str, Any]:
        """The columns' own bind processors, so raw inserts store exactly what the ORM would."""
        if self._procs is None:
            dialect = self.db.engine.dialect
            table = MeterValue.__table__
            self._procs = {c: table.c[c].type._cached_bind_processor(dialect) for c in MV_COLUMNS}
            self._procs["now"] = ChargingSession.__table__.c.last_updated.type._cached_bind_processor(dialect)
            self._procs["energy"] = ChargingSession.__table__.c.energy_wh.type._cached_bind_processor(dialect)
        return self._procs

    def _encode(self, rows: list[MeterRow]) -> list[list[Any]]:
        procs = self._processors()
        if self._plan is None:
            self._plan = [(i, procs[c]) for i, c in enumerate(MV_COLUMNS) if procs[c] is not None]
        plan = self._plan
        out = []
        for r in rows:
            values = list(row_values(r))
            for i, proc in plan:
                values[i] = proc(values[i])
            out.append(values)
        return out

    def _encode_updates(self, updates: list[EnergyUpdate]) -> list[tuple[Any, Any, Any]]:
        procs = self._processors()
        return [(procs["energy"](u["energy"]), procs["now"](u["now"]), u["sid"]) for u in updates]

    async def _flush_sqlite(self, rows: list[MeterRow], updates: list[EnergyUpdate]) -> None:
        if self._sqlite_path is None:  # in-memory database: only the engine's connection sees it
            await self._flush_sqlite_engine(rows, updates)
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="meter-writer")
        self._processors()
        await asyncio.get_running_loop().run_in_executor(
            self._thread, self._write_sqlite, self._sqlite_path, rows, updates
        )

    def _write_sqlite(self, path: str, rows: list[MeterRow], updates: list[EnergyUpdate]) -> None:
        """In the writer thread: one transaction on the file at ``path``, committed before this returns."""
        if self._sqlite is None:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            self._sqlite = conn
        conn = self._sqlite
        values = self._encode(rows)
        upd = self._encode_updates(updates)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if values:
                conn.executemany(SQLITE_INSERT, values)
            if upd:
                conn.executemany(SQLITE_UPDATE, upd)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    async def _flush_sqlite_engine(self, rows: list[MeterRow], updates: list[EnergyUpdate]) -> None:
        values = self._encode(rows)
        upd = self._encode_updates(updates)
        async with self.db.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.execute("BEGIN IMMEDIATE")
            try:
                if values:
                    await raw.executemany(SQLITE_INSERT, values)
                if upd:
                    await raw.executemany(SQLITE_UPDATE, upd)
                await raw.commit()
            except BaseException:
                await raw.rollback()
                raise

    async def _flush_pg(self, rows: list[MeterRow], updates: list[EnergyUpdate]) -> None:
        """One statement, so one round trip and its own transaction: the inserts and the running-energy
        updates commit together (or not at all) before ``execute`` returns.

        Usually every row of a batch is the same kind of sample (the energy register, periodic, in Wh,
        unsigned): then only session, time and value go as arrays and the rest as single parameters, which
        halves the work of encoding and decoding the batch on both sides (see docs/gateway.md)."""
        rows = unique_rows(rows)  # one statement may not propose a key twice (its upsert would refuse)
        upd = self._encode_updates(updates)
        if self._pg is None or self._pg.is_closed():  # first batch, or the connection was lost: reconnect
            self._pg = await asyncpg.connect(self.db.url.replace("postgresql+asyncpg://", "postgresql://", 1))
        kind = uniform_kind(rows)
        if kind is not None:
            ts_proc = self._processors()["timestamp"]
            args: list[Any] = [
                [r["session_id"] for r in rows],
                [ts_proc(r["timestamp"]) for r in rows],
                [str(r["value"]) for r in rows],
                *kind,
            ]
            insert, update = PG_INSERT_UNIFORM, PG_INSERT_UNIFORM_AND_UPDATE
        else:
            values = self._encode(rows)
            args = [list(col) for col in zip(*values, strict=True)] if values else [[] for _ in MV_COLUMNS]
            insert, update = PG_INSERT, PG_INSERT_AND_UPDATE
        if upd:
            energy, now, sid = (list(col) for col in zip(*upd, strict=True))
            await self._pg.execute(update, *args, sid, energy, now)
        elif rows:
            await self._pg.execute(insert, *args)


def is_data_error(exc: Exception) -> bool:
    """Whether a failed batch was refused for its data (a value out of range for the column, a bad encoding, a
    key refused), which one message of it may have caused, rather than for the database (unreachable, locked,
    shutting down), which would refuse every message alike."""
    if isinstance(exc, sqlite3.OperationalError):
        return False
    return isinstance(
        exc,
        sqlite3.DataError
        | sqlite3.IntegrityError
        | sqlite3.InterfaceError
        | sqlite3.ProgrammingError
        | asyncpg.DataError
        | asyncpg.IntegrityConstraintViolationError
        | ValueError
        | TypeError
        | ArithmeticError,
    )


def _sqlite_file(db: Database) -> str | None:
    """The SQLite database file the writer opens its own connection to; None for PostgreSQL and for an
    in-memory database (only the engine's connection sees that one)."""
    if not db.is_sqlite:
        return None
    name = make_url(db.url).database
    return None if not name or name == ":memory:" or name.startswith("file:") else name
