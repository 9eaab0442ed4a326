"""Schema migrations from inside the hub: upgrade, and tell where a database stands against this evhub's code.

``evhub db upgrade`` calls :func:`upgrade`; ``evhub db status`` prints :func:`verdict` of :func:`schema_state`;
every other command, ``evhub serve`` and ``evhub demo`` call :func:`ensure_schema`, which upgrades the embedded
SQLite default (or any database with ``EVHUB_AUTO_MIGRATE``) by itself and otherwise refuses an outdated schema
with :class:`SchemaOutdatedError`. A database migrated by a newer evhub (a revision this code does not know) is
refused everywhere with :class:`SchemaTooNewError`: the advice there is a newer evhub, not an upgrade.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import DBAPIError

from kernel import __version__
from kernel.db.engine import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "alembic_version"


class SchemaError(RuntimeError):
    """The database schema does not fit this evhub; the message says what to do."""


class SchemaOutdatedError(SchemaError):
    """The database schema is behind the code: ``evhub db upgrade`` fixes it."""


class SchemaTooNewError(SchemaError):
    """The database was migrated by a newer evhub: only a newer evhub can use it."""


class UnknownRevisionError(SchemaError, ValueError):
    """``evhub db upgrade REVISION`` named a revision this evhub does not have."""


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str | None:
    return _scripts().get_current_head()


def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision (``None``: no migration applied) against this code's head."""

    current: str | None
    head: str | None
    has_version_table: bool = True
    known: bool = True

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def empty(self) -> bool:
        """Never migrated: no ``alembic_version`` table at all."""
        return not self.has_version_table

    @property
    def newer(self) -> bool:
        """At a revision this evhub does not know: migrated by a newer evhub."""
        return self.current is not None and not self.known

    @property
    def outdated(self) -> bool:
        return not (self.up_to_date or self.empty or self.newer)


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Reading the revision is not news: keep Alembic's "Context impl ..." lines out of the log."""
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


async def schema_state(db: Database) -> SchemaState:
    def _read(sync_conn: Connection) -> tuple[bool, str | None]:
        if not inspect(sync_conn).has_table(VERSION_TABLE):
            return False, None
        with _quiet_alembic():
            return True, MigrationContext.configure(sync_conn).get_current_revision()

    async with db.engine.connect() as conn:
        has_table, current = await conn.run_sync(_read)
    return SchemaState(
        current=current,
        head=head_revision(),
        has_version_table=has_table,
        known=current is None or current in known_revisions(),
    )


def too_new_message(state: SchemaState) -> str:
    return (
        f"the database is at schema revision {state.current}, which this evhub ({__version__}, schema "
        f"{state.head}) does not know: it was migrated by a newer evhub. Upgrade evhub to a version that "
        f"knows revision {state.current}"
    )


def verdict(state: SchemaState) -> str:
    """One line for ``evhub db status``."""
    if state.newer:
        return f"NEWER THAN THIS EVHUB: {too_new_message(state)}"
    if state.up_to_date:
        return f"up to date: schema revision {state.current} (this evhub's head)"
    if state.empty:
        return f"empty: no schema yet; run `evhub db upgrade` to create it (revision {state.head})"
    return (
        f"OUTDATED: schema at revision {state.current or 'base (no migration applied)'}, this evhub needs "
        f"{state.head}; run `evhub db upgrade`"
    )


def _resolve(revision: str) -> None:
    try:
        _scripts().get_revisions(revision)
    except CommandError:
        known = ", ".join(sorted(known_revisions()))
        raise UnknownRevisionError(
            f"unknown schema revision {revision!r}: this evhub knows {known} (head {head_revision()})"
        ) from None


async def upgrade(db: Database, revision: str = "head") -> SchemaState:
    """Apply migrations up to ``revision`` in one transaction; refuses a database from a newer evhub."""
    _resolve(revision)
    before = await schema_state(db)
    if before.newer:
        raise SchemaTooNewError(too_new_message(before))
    cfg = alembic_config()

    def _run(sync_conn: Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with db.engine.begin() as conn:
        try:
            await conn.run_sync(_run)
        except CommandError as exc:  # e.g. a target below the current revision
            raise SchemaError(f"cannot upgrade to {revision!r}: {exc}") from None
        except DBAPIError as exc:
            if not before.empty:
                raise
            reason = " ".join(str(exc.orig or exc).split())
            raise SchemaError(
                f"cannot create the schema: {reason} (the database has tables but no {VERSION_TABLE}: it was "
                "not created by `evhub db upgrade`; use an empty database)"
            ) from None
    return await schema_state(db)


async def ensure_schema(db: Database, *, may_upgrade: bool) -> SchemaState:
    """Upgrade when allowed, else refuse an outdated schema with :class:`SchemaOutdatedError`."""
    state = await schema_state(db)
    if state.newer:
        raise SchemaTooNewError(too_new_message(state))
    if state.up_to_date:
        return state
    if may_upgrade:
        return await upgrade(db)
    raise SchemaOutdatedError(
        f"database schema is at {state.current or 'nothing (empty database)'} but this evhub needs "
        f"{state.head}; run `evhub db upgrade` first (or set EVHUB_AUTO_MIGRATE=1)"
    )
