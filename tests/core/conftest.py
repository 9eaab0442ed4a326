"""Fixtures of the core tests: an empty database of the test database's kind, and the real CLI on the test
database."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from kernel.db.engine import Database


@pytest.fixture
async def empty_database_url(database_url: str, tmp_path: Path):
    """A brand-new empty database of the same kind as the test database."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    url = make_url(database_url)
    name = f"evhub_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch):
    """``await cli("parties", "list")``: the real CLI on the test database; asserts exit 0 unless ``ok=False``."""
    # Imported here, not at the top: a broken CLI import fails the CLI tests, not every core test.
    from evhub.cli import app

    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    runner = CliRunner()

    async def invoke(*args: str, ok: bool = True) -> Result:
        # The CLI runs its own event loop (asyncio.run), so it gets a thread of its own.
        result = await asyncio.to_thread(runner.invoke, app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke
