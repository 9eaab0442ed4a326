"""The real ``evhub`` CLI in tests: ``await cli("parties", "list")`` on the test database, and the one-error-line
check every refusal gets. The ``cli`` fixture (tests/conftest.py) is :func:`cli_on` for the test's database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from typer.testing import CliRunner, Result

from kernel.db.engine import Database

Cli = Callable[..., Awaitable[Result]]


def cli_on(db: Database, monkeypatch: pytest.MonkeyPatch, **env: str) -> Cli:
    """``await cli(*args)``: the real CLI on ``db`` (with the ``EVHUB_*`` settings ``env`` as well); asserts exit
    0 unless ``ok=False``."""
    # Imported here, not at the top: a broken CLI import fails the CLI tests, not every test.
    from evhub.cli import app

    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    async def invoke(*args: str, ok: bool = True) -> Result:
        # The CLI runs its own event loop (asyncio.run), so it gets a thread of its own.
        result = await asyncio.to_thread(runner.invoke, app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def one_error(result: Result, text: str) -> None:
    """The command failed (exit 1) with exactly one ``error:`` line containing ``text``."""
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], result.output
