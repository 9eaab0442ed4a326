"""Migrations upgrade an empty database to head on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from kernel.db.base import Base
from kernel.db.engine import Database
from kernel.db.migrate import (
    SchemaOutdatedError,
    SchemaTooNewError,
    UnknownRevisionError,
    ensure_schema,
    head_revision,
    schema_state,
    upgrade,
)


async def test_upgrade_from_empty_creates_every_table(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        before = await schema_state(db)
        assert before.current is None and before.empty and not before.up_to_date and not before.outdated
        with pytest.raises(SchemaOutdatedError, match="evhub db upgrade"):
            await ensure_schema(db, may_upgrade=False)
        after = await upgrade(db)
        assert after.up_to_date and after.current == head_revision()
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
        # A second upgrade is a no-op.
        assert (await upgrade(db)).current == after.current
    finally:
        await db.dispose()


async def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata
                )
            )
        assert diff == [], f"models and migrations differ; regenerate the migration: {diff}"
    finally:
        await db.dispose()


async def test_a_revision_from_a_newer_evhub_is_never_upgraded_over(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        await upgrade(db)
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_newer'"))
        state = await schema_state(db)
        assert state.newer and not state.outdated and not state.up_to_date
        for attempt in (ensure_schema(db, may_upgrade=True), upgrade(db)):
            with pytest.raises(
                SchemaTooNewError, match="Upgrade evhub to a version that knows revision ffff_newer"
            ):
                await attempt
        assert (await schema_state(db)).current == "ffff_newer"
    finally:
        await db.dispose()


async def test_an_unknown_target_revision_is_refused_before_anything_runs(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        with pytest.raises(UnknownRevisionError, match="unknown schema revision '9999'"):
            await upgrade(db, "9999")
        assert (await schema_state(db)).empty
    finally:
        await db.dispose()
