"""Settings come from EVHUB_* variables; a wrong value names the variable."""

import pytest

from evhub.settings import SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "EVHUB_DATABASE_URL",
        "EVHUB_OCPP_PORT",
        "EVHUB_HTTP_PORT",
        "EVHUB_OCPP_HOST",
        "EVHUB_HTTP_HOST",
    ):
        monkeypatch.delenv(var, raising=False)
    cfg = load_settings(_env_file=None)
    assert cfg.database_url == "sqlite+aiosqlite:///./evhub.db"
    assert (cfg.ocpp_host, cfg.ocpp_port) == ("0.0.0.0", 9000)
    assert (cfg.http_host, cfg.http_port) == ("0.0.0.0", 8000)
    assert cfg.is_default_sqlite


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVHUB_HTTP_PORT", "8123")
    monkeypatch.setenv("EVHUB_LOG_LEVEL", "debug")
    monkeypatch.setenv("EVHUB_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/x")
    cfg = load_settings(_env_file=None)
    assert cfg.http_port == 8123
    assert cfg.log_level == "DEBUG"
    assert not cfg.is_default_sqlite


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("EVHUB_OCPP_PORT", "ninety"),
        ("EVHUB_HTTP_PORT", "70000"),
        ("EVHUB_DATABASE_URL", "mysql://root@localhost/x"),
        ("EVHUB_LOG_FORMAT", "xml"),
    ],
)
def test_wrong_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert var in str(err.value)
    assert repr(value) in str(err.value)
