"""The operator's path through the real CLI: ``evhub db upgrade`` / ``db status`` on every schema state, a
database from a newer evhub, unreachable databases, and the README's "Running it for real" step by step.

Every database here is brand new: an SQLite file in the test's folder, and (when EVHUB_TEST_DATABASE_URL is
PostgreSQL) a PostgreSQL database created for the test and dropped after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from click.testing import Result
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from evhub.cli import app
from kernel.db.engine import Database
from kernel.db.migrate import alembic_config, head_revision, schema_state
from kernel.ports import free_port
from tests.world.demo_network import DEMO

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "ocpi-examples"
FUTURE_REVISION = "9f9f_from_a_newer_evhub"
RUNNER = CliRunner()


async def _admin(server_url: str) -> asyncpg.Connection:
    url = make_url(server_url)
    return await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database="postgres",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A brand-new empty database: an SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    server = os.environ.get("EVHUB_TEST_DATABASE_URL", "")
    if not server.startswith("postgresql"):
        pytest.skip("the PostgreSQL variant runs when EVHUB_TEST_DATABASE_URL is PostgreSQL")
    name = f"evhub_cli_{uuid.uuid4().hex[:10]}"
    admin = await _admin(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def evhub(url: str, *args: str, **env: str) -> Result:
    """``evhub ARGS`` through the real CLI on the database ``url`` (its own thread: it runs its own loop)."""
    environment = {"EVHUB_DATABASE_URL": url, "EVHUB_AUTO_MIGRATE": "false", **env}
    return await asyncio.to_thread(RUNNER.invoke, app, list(args), env=environment)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(result: Result) -> str:
    """The command failed with exactly one ``error: ...`` line and no traceback; that line."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


async def _revision_row(url: str) -> str | None:
    return (await _with_db(url, schema_state)).current


async def _with_db(url: str, fn):  # type: ignore[no-untyped-def]
    db = Database(url)
    try:
        return await fn(db)
    finally:
        await db.dispose()


async def _downgrade(url: str, revision: str) -> None:
    """Take a migrated database back to an older revision (what an older evhub would have left)."""
    cfg = alembic_config()

    def _run(sync_conn) -> None:  # type: ignore[no-untyped-def]
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, revision)

    async def go(db: Database) -> None:
        async with db.engine.begin() as conn:
            await conn.run_sync(_run)

    await _with_db(url, go)


async def _stamp_future(url: str) -> None:
    """What a newer evhub leaves behind: a revision this code has never heard of."""

    async def go(db: Database) -> None:
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE_REVISION})

    await _with_db(url, go)


def _previous_revision() -> str:
    """The revision before head, or ``base`` when head is the first migration."""
    from alembic.script import ScriptDirectory

    down = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision()).down_revision
    return down if isinstance(down, str) else "base"


# -- db upgrade / db status on every schema state -------------------------------------------------------------


async def test_db_upgrade_creates_the_schema_of_an_empty_database(fresh_url: str) -> None:
    status = await evhub(fresh_url, "db", "status")
    assert status.exit_code == 1 and status.stdout.startswith("empty:")
    assert "run `evhub db upgrade`" in status.stdout
    if fresh_url.startswith("postgresql"):  # the embedded SQLite default is upgraded by any command
        assert "evhub db upgrade" in refused(await evhub(fresh_url, "parties", "list"))

    # EVHUB_AUTO_MIGRATE=1 used to make no difference: db upgrade was refused before it could run.
    out = ok(await evhub(fresh_url, "db", "upgrade", EVHUB_AUTO_MIGRATE="1"))
    assert f"upgraded from empty to revision {head_revision()}" in out
    assert await _revision_row(fresh_url) == head_revision()
    assert ok(await evhub(fresh_url, "db", "status")).startswith("up to date")
    ok(await evhub(fresh_url, "parties", "list"))


async def test_db_upgrade_on_a_current_schema_changes_nothing(fresh_url: str) -> None:
    ok(await evhub(fresh_url, "db", "upgrade"))
    out = ok(await evhub(fresh_url, "db", "upgrade"))
    assert f"already at revision {head_revision()}" in out and "nothing to do" in out
    assert await _revision_row(fresh_url) == head_revision()


async def test_db_status_names_an_outdated_revision_and_db_upgrade_brings_it_to_head(fresh_url: str) -> None:
    ok(await evhub(fresh_url, "db", "upgrade"))
    ok(await evhub(fresh_url, "parties", "add", "NL*ABC", "--role", "CPO", "--name", "ABC"))
    previous = _previous_revision()
    await _downgrade(fresh_url, previous)

    status = await evhub(fresh_url, "db", "status")
    assert status.exit_code == 1, status.output
    assert status.stdout.startswith("OUTDATED:") and f"at revision {previous}" in status.stdout
    assert "run `evhub db upgrade`" in status.stdout
    if fresh_url.startswith("postgresql"):
        assert "run `evhub db upgrade` first" in refused(await evhub(fresh_url, "parties", "list"))

    out = ok(await evhub(fresh_url, "db", "upgrade"))
    assert f"upgraded from {previous} to revision {head_revision()}" in out
    assert ok(await evhub(fresh_url, "db", "status")).startswith("up to date")


async def test_a_database_from_a_newer_evhub_is_refused_with_the_advice_to_upgrade_evhub(
    fresh_url: str,
) -> None:
    ok(await evhub(fresh_url, "db", "upgrade"))
    await _stamp_future(fresh_url)
    advice = f"Upgrade evhub to a version that knows revision {FUTURE_REVISION}"

    status = await evhub(fresh_url, "db", "status")
    assert status.exit_code == 1 and status.stdout.startswith("NEWER THAN THIS EVHUB")
    assert advice in status.stdout and "evhub db upgrade" not in status.stdout
    for args, env in (
        (("db", "upgrade"), {}),
        (("parties", "list"), {}),
        (("parties", "list"), {"EVHUB_AUTO_MIGRATE": "1"}),
    ):
        line = refused(await evhub(fresh_url, *args, **env))
        assert advice in line and "evhub db upgrade" not in line, line
    assert await _revision_row(fresh_url) == FUTURE_REVISION  # nothing was "upgraded" over it


async def test_db_upgrade_to_an_unknown_revision_is_one_line_and_changes_nothing(fresh_url: str) -> None:
    line = refused(await evhub(fresh_url, "db", "upgrade", "9999"))
    assert "unknown schema revision '9999'" in line and head_revision() in line
    assert (await _with_db(fresh_url, schema_state)).empty


async def test_db_upgrade_over_tables_it_did_not_create_is_one_line_and_leaves_nothing(
    fresh_url: str,
) -> None:
    async def foreign_table(db: Database) -> None:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE parties (id INTEGER)"))

    await _with_db(fresh_url, foreign_table)
    line = refused(await evhub(fresh_url, "db", "upgrade"))
    assert "cannot create the schema" in line and "no alembic_version" in line

    async def tables(db: Database) -> set[str]:
        async with db.engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    assert await _with_db(fresh_url, tables) == {"parties"}  # the failed upgrade rolled back entirely


# -- databases that cannot be reached ------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("db", "upgrade"), ("db", "status"), ("parties", "list")])
async def test_an_unreachable_postgresql_is_one_line_naming_the_variable_and_host(
    args: tuple[str, ...],
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://evhub:pw-s3cr3t@127.0.0.1:{port}/evhub"
    line = refused(await evhub(url, *args))
    assert "EVHUB_DATABASE_URL" in line and f"127.0.0.1:{port}" in line and "connection refused" in line
    assert "pw-s3cr3t" not in line


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://evhub:pw-s3cr3t@db:abc/evhub",
        "postgresql+asyncpg://evhub:pw-s3cr3t@db:99999/evhub",
    ],
)
async def test_a_malformed_database_url_is_one_line(url: str) -> None:
    line = refused(await evhub(url, "db", "status"))
    assert "EVHUB_DATABASE_URL" in line and "pw-s3cr3t" not in line


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
async def test_a_wrong_postgresql_database_or_login_is_one_line(fresh_url: str) -> None:
    url = make_url(fresh_url)
    wrong_name = url.set(database=f"{url.database}_missing").render_as_string(hide_password=False)
    line = refused(await evhub(wrong_name, "db", "upgrade"))
    assert "EVHUB_DATABASE_URL" in line and f"{url.database}_missing" in line and "does not exist" in line
    wrong_user = url.set(username="no_such_role", password="pw-s3cr3t").render_as_string(hide_password=False)
    line = refused(await evhub(wrong_user, "db", "status"))
    assert "EVHUB_DATABASE_URL" in line and "no_such_role" in line and "pw-s3cr3t" not in line


async def test_an_sqlite_file_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "kernel.db"
    line = refused(await evhub(f"sqlite+aiosqlite:///{missing}", "db", "upgrade"))
    assert "EVHUB_DATABASE_URL" in line and f"the folder {missing.parent} does not exist" in line
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    line = refused(await evhub(f"sqlite+aiosqlite:///{a_file / 'kernel.db'}", "parties", "list"))
    assert f"{a_file} is not a folder" in line
    assert not missing.parent.exists()


# -- the README's "Running it for real", step by step ---------------------------------------------------------


def readme_steps() -> list[list[str]]:
    """The ``evhub`` commands of the README's "Running it for real" block, as argument lists (without serve)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running it for real", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    steps = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0].endswith("/evhub") and words[1:2] != ["serve"]:
            steps.append(words[1:])
    return steps


def _as_own(document: dict, country_code: str, party_id: str) -> dict:
    """An OCPI example object re-issued by the operator's own CPO (what "my-....json" would hold)."""
    return {**document, "country_code": country_code, "party_id": party_id}


def write_operator_files(folder: Path) -> None:
    location = json.loads((FIXTURES / "location_example.json").read_text())
    (folder / "my-location.json").write_text(json.dumps(_as_own(location, "NL", "ABC")))
    tariff = json.loads((DEMO / "tariffs.json").read_text())[0]
    (folder / "my-tariff.json").write_text(json.dumps(_as_own(tariff, "NL", "ABC")))


def test_the_readme_block_is_what_this_test_runs() -> None:
    steps = readme_steps()
    assert steps[0] == ["db", "upgrade"]
    assert {s[0] for s in steps} >= {
        "parties",
        "locations",
        "chargers",
        "tokens",
        "tariffs",
        "api-keys",
        "partners",
    }
    for step in steps:  # the files the README names are the ones written here
        assert all(not w.endswith(".json") or w in {"my-location.json", "my-tariff.json"} for w in step)


async def test_running_it_for_real_step_by_step(
    fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_operator_files(tmp_path)
    for step in readme_steps():
        result = await evhub(fresh_url, *step)
        assert result.exit_code == 0, f"evhub {shlex.join(step)}:\n{result.output}"
    assert ok(await evhub(fresh_url, "db", "status")).startswith("up to date")
    assert "ABC-0001" in ok(await evhub(fresh_url, "chargers", "list"))
    assert "04A1B2C3" in ok(await evhub(fresh_url, "tokens", "list"))
    assert "LOC1" in ok(await evhub(fresh_url, "locations", "list"))
