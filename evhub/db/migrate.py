"""Schema migrations from inside the hub: upgrade to head, and tell whether a database is up to date.

``evhub db upgrade`` calls :func:`upgrade`; ``evhub serve`` and ``evhub demo`` call :func:`ensure_schema`,
which upgrades the embedded SQLite default by itself and refuses an outdated PostgreSQL schema with a clear
message unless ``EVHUB_AUTO_MIGRATE`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from evhub.db.engine import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class SchemaOutdatedError(RuntimeError):
    """The database schema is behind the code."""


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


async def schema_state(db: Database) -> SchemaState:
    async with db.engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    return SchemaState(current=current, head=head_revision())


async def upgrade(db: Database, revision: str = "head") -> SchemaState:
    """Apply migrations up to ``revision`` in one transaction."""
    cfg = alembic_config()

    def _run(sync_conn) -> None:  # type: ignore[no-untyped-def]
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)
    return await schema_state(db)


async def ensure_schema(db: Database, *, may_upgrade: bool) -> SchemaState:
    """Upgrade when allowed, else refuse an outdated schema with :class:`SchemaOutdatedError`."""
    state = await schema_state(db)
    if state.up_to_date:
        return state
    if may_upgrade:
        return await upgrade(db)
    raise SchemaOutdatedError(
        f"database schema is at {state.current or 'nothing (empty database)'} but this evhub needs "
        f"{state.head}; run `evhub db upgrade` first (or set EVHUB_AUTO_MIGRATE=1)"
    )
