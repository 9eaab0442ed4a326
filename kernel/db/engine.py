"""The hub's database handle: one async engine and session factory per process.

JSON columns are written and read with :mod:`kernel.jsonutil`, so Decimals inside stored documents stay exact.
SQLite (the embedded default) gets WAL mode, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` transactions
so the gateway, the HTTP app and the scheduler can share one file: writers queue for the lock instead of
failing. PostgreSQL gets a pool of ``pool_size`` connections plus ``max_overflow`` more, waiting at most
``pool_timeout`` seconds for one (``EVHUB_DB_POOL_SIZE``, ``EVHUB_DB_MAX_OVERFLOW``, ``EVHUB_DB_POOL_TIMEOUT``);
:meth:`Database.pool_saturated` tells admission control (the OCPP upgrade) when every connection is taken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from kernel import jsonutil

SQLITE_PRAGMAS = (
    "PRAGMA foreign_keys=ON",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
)
"""Every SQLite connection of the hub runs these (also the gateway's own meter-writer connection)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is turned off: every transaction begins with BEGIN IMMEDIATE
    # (see _sqlite_begin), so a writer waits for the lock (busy_timeout) instead of failing with "database is
    # locked" when its read snapshot went stale under another writer.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def parse_url(url: str) -> URL:
    """The parsed database URL; a ``ValueError`` naming EVHUB_DATABASE_URL (never echoing a password) if it is
    not one."""
    try:
        parsed = make_url(url)
        port = parsed.port
    except ArgumentError:
        raise ValueError("EVHUB_DATABASE_URL cannot be parsed as a database URL") from None
    except ValueError as exc:  # e.g. a port that is not a number
        raise ValueError(f"EVHUB_DATABASE_URL is not a valid database URL: {exc}") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"EVHUB_DATABASE_URL has port {port}, outside 1-65535")
    return parsed


class Database:
    """An async engine plus session factory for one database URL."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 10,
        max_overflow: int | None = None,
        pool_timeout: float = 30.0,
    ) -> None:
        """``max_overflow`` defaults to ``pool_size``; the pool settings apply to PostgreSQL (SQLite has one
        writer and keeps SQLAlchemy's default pool)."""
        self.url = url
        parsed = parse_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {
            "echo": echo,
            "json_serializer": jsonutil.dumps,
            "json_deserializer": jsonutil.loads,
        }
        if self.dialect == "postgresql":
            kwargs.update(
                pool_size=pool_size,
                max_overflow=pool_size if max_overflow is None else max_overflow,
                pool_timeout=pool_timeout,
                pool_pre_ping=True,
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    def pool_saturated(self) -> bool:
        """True when every connection the pool may open is checked out, so the next request would wait
        (up to the pool timeout) for one. Always False for pools without a limit (SQLite's)."""
        pool = self.engine.sync_engine.pool
        size = getattr(pool, "size", None)
        overflow = getattr(pool, "_max_overflow", None)
        if not callable(size) or not isinstance(overflow, int) or overflow < 0:
            return False
        return int(pool.checkedout()) >= int(size()) + overflow  # type: ignore[attr-defined]

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A database session (not a charging session) in a transaction that commits on success and rolls
        back on error."""
        async with self.sessionmaker() as db_session, db_session.begin():
            yield db_session

    async def dispose(self) -> None:
        await self.engine.dispose()
