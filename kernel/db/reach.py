"""Reaching the configured database, or saying in one line why not.

:func:`check_reachable` opens one connection before a command or ``evhub serve`` uses the database. A refused
port, an unknown host, a wrong database name, a refused login, an SQLite file in a folder that does not exist or
cannot be written become one :class:`DatabaseUnreachableError` naming ``EVHUB_DATABASE_URL`` and the target
(host:port and database, or the file), never the password.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from kernel.db.engine import Database

VARIABLE = "EVHUB_DATABASE_URL"
CONNECT_TIMEOUT = (
    15.0  # seconds; a host that drops packets would otherwise hold a command for the driver's 60 s
)


class DatabaseUnreachableError(RuntimeError):
    """The database named by ``EVHUB_DATABASE_URL`` cannot be opened; the message says which and why."""


def describe_target(url: str) -> str:
    """The database a URL points at, for messages: host:port and name, or the SQLite file (no password)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        return "an in-memory SQLite database" if path is None else f"the SQLite file {path}"
    host = parsed.host or "localhost"
    port = parsed.port or 5432
    user = f", user {parsed.username}" if parsed.username else ""
    return f"PostgreSQL at {host}:{port}, database {parsed.database or '(none)'}{user}"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL, absolute; ``None`` for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).expanduser().absolute()


def _sqlite_problem(path: Path) -> str | None:
    folder = path.parent
    if not folder.exists():
        return f"the folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if path.exists():
        if path.is_dir():
            return f"{path} is a folder, not a database file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} cannot be read and written by this user"
    # SQLite creates the file and its WAL and shared-memory files beside it.
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable by this user"
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and listening on that port?)"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "timed out"
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message.removeprefix("(sqlalchemy.dialects.postgresql.asyncpg.Error) ")


def unreachable(url: str, reason: str) -> DatabaseUnreachableError:
    return DatabaseUnreachableError(
        f"cannot open the database of {VARIABLE} ({describe_target(url)}): {reason}"
    )


async def check_reachable(db: Database) -> None:
    """Open one connection and run ``SELECT 1``; raise :class:`DatabaseUnreachableError` when that fails."""
    if db.is_sqlite:
        path = sqlite_file(db.url)
        problem = _sqlite_problem(path) if path is not None else None
        if problem:
            raise unreachable(db.url, problem)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except TimeoutError:
        raise unreachable(db.url, f"no answer within {CONNECT_TIMEOUT:.0f} s") from None
    except (OSError, SQLAlchemyError) as exc:  # OSError: refused, unknown host, timeout
        raise unreachable(db.url, _reason(exc)) from None
    except Exception as exc:  # the driver's own errors (asyncpg) outside SQLAlchemy's wrapping
        if type(exc).__module__.split(".")[0] in {"asyncpg", "sqlite3", "aiosqlite"}:
            raise unreachable(db.url, _reason(exc)) from None
        raise
