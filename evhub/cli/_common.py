"""What every CLI command shares: settings, the database, rich output, and errors as exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from evhub.provisioning import ProvisioningError
from kernel import sealed
from kernel.db.engine import Database
from kernel.db.migrate import SchemaError, ensure_schema
from kernel.db.reach import DatabaseUnreachableError, check_reachable
from kernel.ports import PortUnavailableError
from kernel.settings import Settings, SettingsError, load_settings

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def error_line(message: str) -> None:
    """Print ``error: message`` as one line on stderr (never wrapped, never read as markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """:func:`error_line`, then exit with ``code``."""
    error_line(message)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), code=2)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn the hub's expected errors into one clear line and a non-zero exit code."""
    try:
        yield
    except (
        ProvisioningError,
        SchemaError,
        DatabaseUnreachableError,
        PortUnavailableError,
        SettingsError,
        ValueError,
    ) as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(f"no such file: {exc.filename}")
    except DBAPIError as exc:  # the database refused a statement or went away mid-command
        fail("database error: " + " ".join(str(exc.orig or exc).split()))


def run_with_db(
    fn: Callable[[Database], Awaitable[T]], *, upgrade_default: bool = True, check_schema: bool = True
) -> T:
    """Run ``fn(db)`` on the configured database, after checking it can be reached (one clear line if not).

    With ``check_schema`` (every command but ``db ...``) the schema must fit this evhub: the embedded SQLite
    default (or any database with EVHUB_AUTO_MIGRATE) is migrated on demand, an outdated one is refused with
    the advice to run ``evhub db upgrade``, one from a newer evhub with the advice to upgrade evhub.
    """
    cfg = settings()
    sealed.configure(cfg.secrets_key)  # a command may read or write a partner's outgoing token

    async def main() -> T:
        db = Database(cfg.database_url)
        try:
            await check_reachable(db)
            if check_schema:
                await ensure_schema(
                    db, may_upgrade=upgrade_default and (cfg.is_default_sqlite or cfg.auto_migrate)
                )
            return await fn(db)
        finally:
            await db.dispose()

    with reported_errors():
        return asyncio.run(main())


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, show_lines=False)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    console.print(t)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
