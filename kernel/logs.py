"""Structured logging: one line per event, JSON or key=value, with the request or charger id on each line.

Code logs with the standard library (``logging.getLogger(__name__)``) and passes extra fields with
``extra={"fields": {...}}``. :func:`bind` puts ``request_id`` / ``charger_id`` / ``partner`` into a context
variable that is added to every line logged from that task. Secrets are never passed to loggers.
:class:`RateLimitedLog` logs a repeating failure once per kind and interval.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "evhub_log_context", default=None
)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line emitted inside the ``with`` block (task-local)."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in fields.items() if v is not None})
    token = _context.set(current)
    try:
        yield
    finally:
        _context.reset(token)


def bind_permanently(**fields: Any) -> None:
    """Add fields for the rest of the current task (e.g. a charger's connection handler)."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in fields.items() if v is not None})
    _context.set(current)


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update(_context.get() or {})
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        fields.update(extra)
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_record_fields(record), default=str, ensure_ascii=False)


def _kv_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_kv_value(v)}" for k, v in _record_fields(record).items())


def configure(level: str = "INFO", fmt: str = "kv", stream: Any = None) -> None:
    """Install the hub's formatter on the root logger (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_evhub", False):
            root.removeHandler(old)
    handler._evhub = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("uvicorn.access", "websockets.server", "websockets.client", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


class RateLimitedLog:
    """At most one line per ``kind`` every ``interval`` seconds (a clock in seconds, monotonic by default), each
    saying how many of that kind were left out since the last line: a failure that repeats on every request or
    message (an unreachable database, a flood of bad input) logs one line per kind per interval, not a flood."""

    def __init__(
        self, logger: logging.Logger, interval: float = 10.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, msg: str, fields: dict[str, Any] | None = None) -> bool:
        """Log ``msg`` (no traceback) unless a line of ``kind`` was logged less than ``interval`` ago; True when
        it was logged."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        line = dict(fields or {})
        line["kind"] = kind
        if suppressed := self._suppressed.pop(kind, 0):
            line["suppressed"] = suppressed
        self.logger.log(level, msg, extra={"fields": line})
        return True

    def warning(self, kind: str, msg: str, fields: dict[str, Any] | None = None) -> bool:
        return self.log(logging.WARNING, kind, msg, fields)

    def info(self, kind: str, msg: str, fields: dict[str, Any] | None = None) -> bool:
        return self.log(logging.INFO, kind, msg, fields)
