"""Shared test fixtures: a real database (SQLite by default, PostgreSQL with EVHUB_TEST_DATABASE_URL).

On PostgreSQL each run gets its own fresh database (created from the URL's server, dropped at the end); on
SQLite a file in the run's temporary folder. Under pytest-xdist (``-n``) each worker is a run of its own: its own
database, its own temporary folder, ports from :func:`kernel.ports.free_port`, and nothing written into the
repository (Hypothesis keeps no example database). The schema is migrated once per run with the real Alembic
migrations; each test that asks for ``db`` starts from empty tables. Nothing is mocked.

Every test runs on a pinned calendar (:data:`TEST_CLOCK_START`, mid-month, the hub's clock then runs on at the
real rate), so no result depends on the day the suite runs; ``@pytest.mark.clock("2026-11-30T23:59:00Z")``
moves one test to another instant. Fixtures are files of the repository (``tests/fixtures``), never outside it.

Passwords (chargers, fleet managers) are hashed with real Argon2id, but with the cheapest parameters
(:data:`TEST_HASHER`) in the test process: the hub's own cost (:data:`PRODUCT_HASHER`, checked by
tests/core/test_password_cost.py) took a third of some folders' time, and no test is about that cost. Processes
that a test starts (``evhub serve``, the demo) keep the real one.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from argon2 import PasswordHasher
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.engine import make_url

import kernel.models  # noqa: F401
from kernel import security
from kernel.clock import pinned
from kernel.db.base import Base
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.ports import free_port
from simulators.localstripe import LocalStripe
from tests.cli_kit import Cli, cli_on

# The API-key check of /api is exercised by tests/core/test_api_auth.py (and the serve test); the other suites
# talk to /api as the hub operator would, without repeating the key dance in every test.
os.environ.setdefault("EVHUB_API_AUTH", "false")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
OCPI_EXAMPLES = FIXTURES / "ocpi-examples"  # official OCPI 2.2.1 examples, verbatim (see its README.md)

PRODUCT_HASHER = security._hasher
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
security._hasher = TEST_HASHER  # before portal.login computes its dummy hash at import

hypothesis_settings.register_profile("evhub", database=None)  # no .hypothesis/ folder shared by the workers
hypothesis_settings.load_profile("evhub")

TEST_CLOCK_START = datetime(2026, 6, 16, 10, 0, tzinfo=UTC)
"""Where the clock of every test starts: a Tuesday in mid-month, far from month, year and DST changes."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clock(iso_instant): start this test's clock at another instant (ISO 8601 with offset)"
    )


SHARED_FIXTURE = re.compile(r"""scope\s*=\s*["'](module|class|package)["']""")
"""A fixture that one worker builds once for several tests (``session`` ones are per worker anyway)."""


@functools.cache
def _shares_fixtures(path: str) -> bool:
    """Whether the tests of this module share a fixture: defined in it or in a conftest.py above it."""
    module = ROOT / path
    places = [module, *(folder / "conftest.py" for folder in module.parents if folder.is_relative_to(TESTS))]
    return any(
        place.is_file() and SHARED_FIXTURE.search(place.read_text(encoding="utf-8")) for place in places
    )


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` (the Makefile's): tests are shared out one by one, so one long module does not hold up
    a worker, except that the tests of a module sharing a module-scoped fixture (the demo runs, a TLS CA, a Dask
    cluster) stay together on one worker, so that fixture is still built once. (pytest-xdist's own grouping by
    ``xdist_group`` marks does nothing under pytest 9, whose node ids it can no longer rename.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedFixtureScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope != nodeid:  # an xdist_group mark, where pytest-xdist can still apply it
                return scope
            path = nodeid.split("::", 1)[0]
            return path if _shares_fixtures(path) else nodeid

    return SharedFixtureScheduling(config, log)


@pytest.fixture(autouse=True)
def clock_start(request: pytest.FixtureRequest) -> Iterator[datetime]:
    """Pin the process clock (:func:`kernel.timeutil.utcnow`) for the test; yields the instant it starts at."""
    marker = request.node.get_closest_marker("clock")
    start = datetime.fromisoformat(marker.args[0]) if marker else TEST_CLOCK_START
    with pinned(start):
        yield start


def _test_url(tmp_root: Path) -> str:
    url = os.environ.get("EVHUB_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite+aiosqlite:///{tmp_root / 'evhub-test.db'}"


async def _admin(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )


async def _create_database(url: str) -> str:
    """A fresh PostgreSQL database for this run, so concurrent runs on one server never collide."""
    parsed = make_url(url)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")  # gw0, gw1... under pytest-xdist
    name = f"{parsed.database or 'evhub'}_run_{worker}_{uuid.uuid4().hex[:8]}"
    admin = await _admin(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


async def _drop_database(url: str) -> None:
    admin = await _admin(url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    await upgrade(db)
    await db.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the test database (a fresh one per run, or per xdist worker), migrated to head once."""
    url = _test_url(tmp_path_factory.mktemp("db"))
    is_pg = url.startswith("postgresql")
    if is_pg:
        url = asyncio.run(_create_database(url))
    asyncio.run(_migrate(url))
    yield url
    if is_pg:
        asyncio.run(_drop_database(url))


async def clear_tables(db: Database) -> None:
    """Empty every table of the model (not alembic_version); on PostgreSQL also restart the id sequences.

    PostgreSQL gets one simple query: a DELETE per table, children first, then every sequence of the schema set
    back to its start (what ``TRUNCATE ... RESTART IDENTITY`` did, at 1-2 ms instead of ~190 ms per test: a
    TRUNCATE of ~40 tables makes new files for each)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    if db.is_sqlite:
        async with db.engine.begin() as conn:
            for name in tables:
                await conn.execute(text(f'DELETE FROM "{name}"'))
        return
    deletes = "".join(f'DELETE FROM "{name}"; ' for name in tables)
    restart = (
        "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false) "
        "FROM pg_sequences WHERE schemaname = current_schema()"
    )
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute(deletes + restart)  # several statements in one query: one implicit transaction


def _sqlite_write_lock_free(url: str) -> bool:
    """Whether a new connection gets the SQLite file's write lock at once (nobody holds a transaction open)."""
    database = make_url(url).database
    if not database:
        return True
    probe = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


async def _assert_sqlite_released(url: str, test: str) -> None:
    """After a test on SQLite: nothing of it may still hold the write lock (a task or connection left in a
    transaction would make the worker's next test fail with "database is locked" 30 s later, far from the
    cause). A writer finishing its last commit gets a few seconds; then this test fails, naming itself."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not _sqlite_write_lock_free(url):
        if loop.time() > deadline:
            gc.collect()  # a leaked, unreferenced connection is closed by its finalizer
            assert _sqlite_write_lock_free(url), f"{test} left a transaction open on the SQLite database"
            return
        await asyncio.sleep(0.05)


@pytest.fixture
async def db(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """A :class:`Database` on empty tables; on SQLite, the test must leave no transaction open."""
    database = Database(database_url)
    await clear_tables(database)
    try:
        yield database
    finally:
        await database.dispose()
    if database.is_sqlite:
        await _assert_sqlite_released(database_url, request.node.nodeid)


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[LocalStripe]:
    """A real localstripe (PyPI) for this worker, started once; tests use :func:`localstripe`."""
    with LocalStripe() as server:
        yield server


@pytest.fixture
def localstripe(localstripe_server: LocalStripe) -> LocalStripe:
    """localstripe with no objects left from an earlier test of this worker."""
    localstripe_server.flush()
    return localstripe_server


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``await cli("parties", "list")``: the real CLI on the test database (:func:`tests.cli_kit.cli_on`)."""
    return cli_on(db, monkeypatch)
