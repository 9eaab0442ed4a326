"""Settings come from EVHUB_* variables or a ``.env`` file; a wrong value names the variable.

Every field is proven to be read from ``.env`` (parametrized over ``Settings.model_fields``, so a new field
without a sample here fails), every validated field is proven to refuse a bad value naming its variable, and the
portal's time zone from ``.env`` is followed through to the portal's month boundaries.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from evhub.app import RunningHub
from kernel.db.engine import Database
from kernel.settings import Settings, SettingsError, load_settings
from portal.component import PortalComponent
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/x"

# A valid, non-default value for every setting, and what else must be set with it to make sense.
SAMPLES: dict[str, tuple[str, dict[str, str]]] = {
    "database_url": (PG_URL, {}),
    "db_pool_size": ("25", {}),
    "db_max_overflow": ("0", {}),
    "db_pool_timeout": ("2.5", {}),
    "password_workers": ("3", {}),
    "password_queue": ("1000", {}),
    "password_cache_key": ("a-cache-key-of-some-length", {}),
    "password_cache_ttl": ("3600", {}),
    "ocpp_host": ("127.0.0.2", {}),
    "ocpp_port": ("9100", {}),
    "ocpp_workers": ("3", {"EVHUB_DATABASE_URL": PG_URL}),
    "http_host": ("127.0.0.3", {}),
    "http_port": ("8100", {}),
    "http_max_body_bytes": ("2097152", {}),
    "log_level": ("warning", {}),
    "log_format": ("json", {}),
    "node_name": ("node-7", {}),
    "auto_migrate": ("true", {}),
    "api_auth": ("false", {}),
    "public_url": ("https://hub.example.com/base/", {}),
    "heartbeat_interval": ("120", {}),
    "ocpp_tls_cert": ("{tmp}/server.pem", {"EVHUB_OCPP_TLS_KEY": "{tmp}/server.key"}),
    "ocpp_tls_key": ("{tmp}/server.key", {"EVHUB_OCPP_TLS_CERT": "{tmp}/server.pem"}),
    "ocpp_tls_ca": (
        "{tmp}/ca.pem",
        {"EVHUB_OCPP_TLS_CERT": "{tmp}/server.pem", "EVHUB_OCPP_TLS_KEY": "{tmp}/server.key"},
    ),
    "ocpp_max_frame_bytes": ("131072", {}),
    "ocpp_ping_interval": ("15", {}),
    "ocpp_ping_timeout": ("5", {}),
    "ocpp_heartbeat_grace": ("3", {}),
    "ocpp_command_timeout": ("10", {}),
    "ocpp_rate_limit": ("50", {}),
    "ocpp_rate_burst": ("400", {}),
    "late_data_grace": ("120", {}),
    "max_session_span": ("86400", {}),
    "clock_skew": ("60", {}),
    "smtp_url": ("smtps://mailer:pw@mail.example.com:465", {}),
    "mail_from": ("Receipts <receipts@example.com>", {}),
    "settlement_dir": ("exports/settlement", {}),
    "portal_time_zone": ("Europe/Amsterdam", {}),
    "portal_secret": ("a-portal-secret-of-32-characters", {}),
    "secrets_key": ("the-new-sealing-key-0001, the-old-sealing-key-0000", {}),
    "clock_start": ("2026-01-31T23:59:00Z", {}),
    "stripe_api_key": ("sk_test_a-stripe-secret-key", {}),
    "stripe_publishable_key": ("pk_test_a-stripe-publishable-key", {}),
    "stripe_api_base": ("http://127.0.0.1:8420/", {}),
    "stripe_webhook_secret": ("whsec_a-webhook-signing-secret", {}),
}


def _clear_evhub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("EVHUB_"):
            monkeypatch.delenv(var)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (where ``.env`` is read from) with PEM-named files, and no EVHUB_* variable."""
    for name in ("server.pem", "server.key", "ca.pem"):
        (tmp_path / name).write_text("placeholder: the settings check the files exist, ssl reads them\n")
    monkeypatch.chdir(tmp_path)
    _clear_evhub_env(monkeypatch)
    return tmp_path


def _write_env(folder: Path, values: dict[str, str]) -> None:
    text = "".join(f"{var}={value.format(tmp=folder)}\n" for var, value in values.items())
    (folder / ".env").write_text(text)


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_read_from_dotenv(workdir: Path, field: str) -> None:
    assert field in SAMPLES, f"add a valid non-default sample for {field} to SAMPLES"
    value, companions = SAMPLES[field]
    var = f"EVHUB_{field.upper()}"
    _write_env(workdir, {var: value, **companions})
    loaded = getattr(load_settings(), field)
    default = Settings.model_fields[field].get_default(call_default_factory=True)
    expected = getattr(
        Settings(_env_file=None, **{field: value.format(tmp=workdir)}, **_fields(companions, workdir)), field
    )
    assert loaded != default, f"{var} from .env was not taken"
    assert loaded == expected


def _fields(values: dict[str, str], folder: Path) -> dict[str, str]:
    return {var.removeprefix("EVHUB_").lower(): v.format(tmp=folder) for var, v in values.items()}


def test_environment_wins_over_dotenv(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_env(workdir, {"EVHUB_HTTP_PORT": "8100", "EVHUB_NODE_NAME": "from-dotenv"})
    monkeypatch.setenv("EVHUB_HTTP_PORT", "8123")
    cfg = load_settings()
    assert (cfg.http_port, cfg.node_name) == (8123, "from-dotenv")


def test_defaults(workdir: Path) -> None:
    cfg = load_settings()
    assert cfg.database_url == "sqlite+aiosqlite:///./kernel.db"
    assert (cfg.ocpp_host, cfg.ocpp_port) == ("0.0.0.0", 9000)
    assert (cfg.http_host, cfg.http_port) == ("0.0.0.0", 8000)
    assert cfg.public_url == "http://localhost:8000"
    assert cfg.is_default_sqlite


def test_environment_overrides(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVHUB_HTTP_PORT", "8123")
    monkeypatch.setenv("EVHUB_LOG_LEVEL", "debug")
    monkeypatch.setenv("EVHUB_DATABASE_URL", PG_URL)
    cfg = load_settings()
    assert cfg.http_port == 8123
    assert cfg.log_level == "DEBUG"
    assert not cfg.is_default_sqlite


@pytest.mark.parametrize(
    ("public_url", "normalized"),
    [
        ("https://hub.example.com/", "https://hub.example.com"),
        ("http://10.0.0.5:8000", "http://10.0.0.5:8000"),
        (" https://hub.example.com/evhub// ", "https://hub.example.com/evhub"),
    ],
)
def test_public_url_loses_its_trailing_slash(workdir: Path, public_url: str, normalized: str) -> None:
    assert load_settings(public_url=public_url).public_url == normalized


TLS_PAIR = {"EVHUB_OCPP_TLS_CERT": "{tmp}/server.pem", "EVHUB_OCPP_TLS_KEY": "{tmp}/server.key"}

# (variable, bad value, variables that must be set with it for the check to apply)
BAD_VALUES: list[tuple[str, str, dict[str, str]]] = [
    ("EVHUB_DATABASE_URL", "mysql://root@localhost/x", {}),
    ("EVHUB_DB_POOL_SIZE", "0", {}),
    ("EVHUB_DB_MAX_OVERFLOW", "-1", {}),
    ("EVHUB_DB_POOL_TIMEOUT", "0", {}),
    ("EVHUB_PASSWORD_WORKERS", "0", {}),
    ("EVHUB_PASSWORD_QUEUE", "none", {}),
    ("EVHUB_PASSWORD_CACHE_KEY", "too-short", {}),
    ("EVHUB_PASSWORD_CACHE_TTL", "-5", {}),
    ("EVHUB_OCPP_HOST", "", {}),
    ("EVHUB_OCPP_PORT", "ninety", {}),
    ("EVHUB_LATE_DATA_GRACE", "-1", {}),
    ("EVHUB_MAX_SESSION_SPAN", "0", {}),
    ("EVHUB_CLOCK_SKEW", "soon", {}),
    ("EVHUB_OCPP_WORKERS", "4", {}),  # SQLite
    ("EVHUB_HTTP_HOST", "", {}),
    ("EVHUB_HTTP_PORT", "70000", {}),
    ("EVHUB_HTTP_MAX_BODY_BYTES", "100", {}),
    ("EVHUB_LOG_LEVEL", "LOUD", {}),
    ("EVHUB_LOG_FORMAT", "xml", {}),
    ("EVHUB_AUTO_MIGRATE", "perhaps", {}),
    ("EVHUB_API_AUTH", "sometimes", {}),
    ("EVHUB_PUBLIC_URL", "notaurl", {}),
    ("EVHUB_PUBLIC_URL", "ftp://hub.example.com", {}),
    ("EVHUB_PUBLIC_URL", "https://", {}),
    ("EVHUB_PUBLIC_URL", "http://hub:port", {}),
    ("EVHUB_HEARTBEAT_INTERVAL", "5", {}),
    ("EVHUB_OCPP_TLS_CERT", "{tmp}/missing.pem", {"EVHUB_OCPP_TLS_KEY": "{tmp}/server.key"}),
    ("EVHUB_OCPP_TLS_KEY", "{tmp}/missing.key", {"EVHUB_OCPP_TLS_CERT": "{tmp}/server.pem"}),
    ("EVHUB_OCPP_TLS_KEY", "", {"EVHUB_OCPP_TLS_CERT": "{tmp}/server.pem"}),  # a cert needs its key
    ("EVHUB_OCPP_TLS_KEY", "{tmp}/server.key", {}),  # a key needs its cert
    ("EVHUB_OCPP_TLS_CA", "{tmp}/ca.pem", {}),  # client certificates need TLS
    ("EVHUB_OCPP_TLS_CA", "{tmp}/missing-ca.pem", TLS_PAIR),
    ("EVHUB_OCPP_MAX_FRAME_BYTES", "10", {}),
    ("EVHUB_OCPP_PING_INTERVAL", "-1", {}),
    ("EVHUB_OCPP_PING_TIMEOUT", "0", {}),
    ("EVHUB_OCPP_HEARTBEAT_GRACE", "0.5", {}),
    ("EVHUB_OCPP_COMMAND_TIMEOUT", "0", {}),
    ("EVHUB_OCPP_RATE_LIMIT", "0", {}),
    ("EVHUB_OCPP_RATE_BURST", "0", {}),
    ("EVHUB_SMTP_URL", "mail.example.com:25", {}),
    ("EVHUB_SMTP_URL", "http://mail.example.com", {}),
    ("EVHUB_SMTP_URL", "smtp://mail.example.com:99999", {}),
    ("EVHUB_SMTP_URL", "smtp://mail.example.com:twentyfive", {}),
    ("EVHUB_SMTP_URL", "smtp://mail.example.com?timeout=soon", {}),
    ("EVHUB_MAIL_FROM", "receipts", {}),
    ("EVHUB_MAIL_FROM", "receipts@", {}),
    ("EVHUB_SETTLEMENT_DIR", "", {}),
    ("EVHUB_PORTAL_TIME_ZONE", "Mars/Olympus", {}),
    ("EVHUB_PORTAL_TIME_ZONE", "Europe/", {}),
    ("EVHUB_PORTAL_SECRET", "short", {}),
    ("EVHUB_SECRETS_KEY", "tiny-key", {}),
    ("EVHUB_SECRETS_KEY", "a-long-enough-sealing-key,tiny-key", {}),  # every key, not only the first
    ("EVHUB_CLOCK_START", "yesterday", {}),
    ("EVHUB_STRIPE_API_BASE", "localhost:8420", {}),
    ("EVHUB_STRIPE_API_KEY", "pk_test_not-the-secret-key", {}),
    ("EVHUB_STRIPE_PUBLISHABLE_KEY", "sk_test_not-the-publishable-key", {}),
    ("EVHUB_STRIPE_WEBHOOK_SECRET", "a-secret-without-its-prefix", {}),
    ("EVHUB_CLOCK_START", "2026-01-31T23:59:00", {}),  # no offset: which zone?
]


@pytest.mark.parametrize(("var", "value", "companions"), BAD_VALUES)
@pytest.mark.parametrize("source", ["environment", "dotenv"])
def test_wrong_value_names_the_variable(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    value: str,
    companions: dict[str, str],
    source: str,
) -> None:
    values = {var: value, **companions}
    if source == "dotenv":
        _write_env(workdir, values)
    else:
        for name, text in values.items():
            monkeypatch.setenv(name, text.format(tmp=workdir))
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert var in message
    assert "\n" not in message  # one line
    if var in (
        "EVHUB_PASSWORD_CACHE_KEY",
        "EVHUB_PORTAL_SECRET",
        "EVHUB_SECRETS_KEY",
        "EVHUB_STRIPE_API_KEY",
        "EVHUB_STRIPE_WEBHOOK_SECRET",
    ):
        assert value not in message and "<hidden>" in message  # a secret is never repeated
    else:
        assert repr(value.format(tmp=workdir)) in message


def test_every_validated_field_has_a_bad_value() -> None:
    """Fields with a check (constraints, Literal, bool or a validator) appear in BAD_VALUES."""
    covered = {var.removeprefix("EVHUB_").lower() for var, _, _ in BAD_VALUES}
    unchecked = {"node_name"}  # free text
    assert set(Settings.model_fields) - covered - unchecked == set()


def test_passwords_in_urls_are_not_repeated(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVHUB_SMTP_URL", "smtp://mailer:hunter2-secret@mail.example.com:port")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "EVHUB_SMTP_URL" in str(err.value) and "hunter2-secret" not in str(err.value)


def test_readme_table_is_generated_from_the_settings() -> None:
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table.readme_table(readme) == table.render(), (
        "README's configuration table is out of date: run .venv/bin/python scripts/settings_table.py --write"
    )


async def test_dotenv_time_zone_sets_the_portal_month(
    db: Database, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EVHUB_PORTAL_TIME_ZONE from ``.env`` reaches the portal: a session that starts at 2026-03-31 11:00 UTC
    is on 1 April in Pacific/Kiritimati (UTC+14), so the April report lists it and March's does not."""
    from tests.portal.helpers import login
    from tests.world.fleets import add_fleet_with_manager, add_session, add_token, base_world

    _write_env(workdir, {"EVHUB_PORTAL_TIME_ZONE": "Pacific/Kiritimati"})
    settings = load_settings(
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=free_port(),
        auto_migrate=True,
        log_level="WARNING",
    )
    assert settings.portal_time_zone == "Pacific/Kiritimati"
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice")
    await add_session(db, world, "ACME01", datetime(2026, 3, 31, 11, 0, tzinfo=UTC), "12.5")
    hub = RunningHub(settings, components=[PortalComponent(scan_interval=3600)])  # type: ignore[list-item]
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=hub.hub.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:
            assert (await login(client, "boss@acme.test")).status_code == 303

            async def sessions_in(month: str) -> int:
                reply = await client.get("/portal/reports.csv", params={"month": month})
                assert reply.status_code == 200
                rows = list(csv.reader(io.StringIO(reply.text)))[1:]
                return sum(1 for row in rows if row and row[0] != "TOTAL")

            assert await sessions_in("2026-04") == 1
            assert await sessions_in("2026-03") == 0
    finally:
        await hub.stop()


@pytest.mark.parametrize(
    ("line", "var"),
    [
        ("EVHUB_PUBLIC_URL=notaurl", "EVHUB_PUBLIC_URL"),
        ("EVHUB_PORTAL_TIME_ZONE=Europe/Atlantis", "EVHUB_PORTAL_TIME_ZONE"),
    ],
)
def test_the_cli_refuses_a_bad_dotenv_in_one_line(workdir: Path, line: str, var: str) -> None:
    """The real CLI, configured by a ``.env`` in its working directory: one ``error:`` line, non-zero exit."""
    from typer.testing import CliRunner

    from evhub.cli import app

    (workdir / ".env").write_text(f"EVHUB_DATABASE_URL=sqlite+aiosqlite:///{workdir}/hub.db\n{line}\n")
    result = CliRunner().invoke(app, ["db", "status"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and var in lines[0], result.stderr
    assert not (workdir / "hub.db").exists()  # refused before anything was created
