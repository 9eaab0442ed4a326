"""Which exceptions are the client's bad input and which an unreachable database, so that neither is a 500.

:func:`classify` looks at an exception (and its causes) and answers a :class:`Failure` with the HTTP status
and one sentence, or None for a real bug (a 500 with its traceback, as before):

- **bad input** (422): a value the database refuses (PostgreSQL: NUL in text, a number out of int64 range, any
  SQLSTATE class 22 "data exception"), an arithmetic overflow (``OverflowError``, ``decimal`` signals: a year
  10000, ``Decimal('1e999999')`` quantized), JSON nested too deep for the parser (``RecursionError``), text that is
  not valid Unicode (a lone surrogate);
- **unavailable** (503, with Retry-After): the database cannot be reached or is not accepting connections
  (connection refused or reset, a pool timeout, SQLSTATE classes 08 and 57P, SQLite that cannot open its file
  or is locked).

Pure: no I/O, no logging (the callers log one line per kind, :class:`kernel.logs.RateLimitedLog`).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

__all__ = ["BAD_INPUT", "RETRY_AFTER_SECONDS", "UNAVAILABLE", "Failure", "classify"]

BAD_INPUT = "bad_input"
UNAVAILABLE = "unavailable"
RETRY_AFTER_SECONDS = 5
"""What Retry-After says while the database is unreachable."""

_SQLITE_UNAVAILABLE = ("unable to open database file", "database is locked", "disk i/o error")


@dataclass(frozen=True)
class Failure:
    """What a request that failed this way is answered: ``status`` and ``message``; ``kind`` for the log."""

    kind: str
    status: int
    message: str

    @property
    def retry_after(self) -> int | None:
        return RETRY_AFTER_SECONDS if self.kind == UNAVAILABLE else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, sa_exc.DBAPIError) and current.orig is not None:
            current = current.orig
        else:
            current = current.__cause__ or current.__context__


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else ""


def _unavailable() -> Failure:
    return Failure(UNAVAILABLE, 503, "the database is not reachable just now: retry later")


def _bad_input(what: str) -> Failure:
    return Failure(BAD_INPUT, 422, f"a value in the request is out of range or not storable ({what})")


def classify(exc: BaseException) -> Failure | None:
    """The failure ``exc`` stands for, or None when it is not bad input nor an unreachable database."""
    for link in _chain(exc):
        state = _sqlstate(link)
        if state.startswith("22"):
            return _bad_input("refused by the database")
        if state.startswith("08") or state.startswith("57P") or state == "53300":
            return _unavailable()
        if isinstance(link, sa_exc.DBAPIError) and link.connection_invalidated:
            return _unavailable()
        if isinstance(link, sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return _unavailable()
        if isinstance(link, ConnectionError | TimeoutError) or type(link).__name__ == "gaierror":
            return _unavailable()
        if isinstance(link, sa_exc.OperationalError) and any(
            text in str(link).lower() for text in _SQLITE_UNAVAILABLE
        ):
            return _unavailable()
        if isinstance(link, RecursionError):
            return _bad_input("nested too deep")
        if isinstance(link, UnicodeError):
            return _bad_input("text that is not valid Unicode")
        if isinstance(link, OverflowError | decimal.DecimalException):
            return _bad_input("a number, date or time overflows")
        if type(link).__module__.startswith("asyncpg") and isinstance(link, ValueError):
            return _bad_input("refused by the database driver")  # asyncpg's DataError: int64 overflow, ...
    return None
