"""The Docker files checked against the code, since Docker itself cannot run where the tests run.

docker/compose.yaml is rendered (its ``${VAR...}`` interpolation applied, as ``docker compose config`` would)
and docker/Dockerfile is read; what they refer to must exist: every ``EVHUB_*`` variable is a Settings field and
the hub's environment loads as valid Settings, the start command runs existing CLI commands, the volumes cover
the database and the exports folder (writable by the image's uid), the ports match the Settings defaults, the
healthcheck asks the hub's /health, the mail sink is a service of the file, and no password is written down.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from evhub.cli import app
from kernel.settings import Settings, load_settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
IMAGE_UID = "10001"
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SETTINGS_VARIABLES = {f"EVHUB_{name.upper()}" for name in Settings.model_fields}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` (a missing required one raises)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op in (":?", "?"):
            raise KeyError(f"{name} is required: {arg}")
        return arg if op in (":-", "-") else ""

    return INTERPOLATION.sub(one, value)


def render(node: object, env: dict[str, str]) -> object:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {k: render(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [render(v, env) for v in node]
    return node


def raw_compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def example_env() -> dict[str, str]:
    """docker/.env.example, with a made-up password where it leaves the secrets to the operator."""
    env = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env | {"POSTGRES_PASSWORD": "NotARealPassword42"}


@pytest.fixture
def compose() -> dict:
    return render(raw_compose(), example_env())  # type: ignore[return-value]


@pytest.fixture
def dockerfile() -> dict[str, list[str]]:
    """Instructions of docker/Dockerfile by keyword (continuation lines joined)."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.setdefault(keyword.upper(), []).append(rest.strip())
    return instructions


def dockerfile_env(dockerfile: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in dockerfile["ENV"]:
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def hub_env(compose: dict, dockerfile: dict[str, list[str]]) -> dict[str, str]:
    """The hub container's environment: the image's ENV, then compose's ``environment``."""
    return dockerfile_env(dockerfile) | {
        k: str(v) for k, v in compose["services"]["hub"]["environment"].items()
    }


def container_port(mapping: str) -> int:
    return int(str(mapping).rsplit(":", 1)[1].split("/")[0])


def test_every_evhub_variable_is_a_setting_and_the_hub_environment_loads(
    compose: dict, dockerfile: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = hub_env(compose, dockerfile)
    evhub_vars = {k for k in env if k.startswith("EVHUB_")}
    assert evhub_vars - SETTINGS_VARIABLES == set(), "not settings of kernel/settings.py"
    assert {"EVHUB_DATABASE_URL", "EVHUB_SMTP_URL", "EVHUB_SETTLEMENT_DIR"} <= evhub_vars
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if name.startswith("EVHUB_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    settings = load_settings()  # a SettingsError here names the variable
    assert settings.database_url.startswith("postgresql+asyncpg://")


def test_compose_requires_its_secrets_and_writes_none_down(dockerfile: dict[str, list[str]]) -> None:
    raw = raw_compose()
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        render(raw, {})  # compose refuses to start without it
    required = {m["name"] for m in INTERPOLATION.finditer(json.dumps(raw)) if m["op"] in (":?", "?")}
    assert set(example_env()) >= required, "docker/.env.example must list every required variable"
    for service in raw["services"].values():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            if re.search("PASSWORD|SECRET|TOKEN", key):
                assert text.startswith("${"), f"{key} must come from the environment"
            netloc = urlsplit(text).netloc if "://" in text else ""
            if "@" in netloc and ":" in netloc.split("@")[0]:
                assert "${" in netloc.split("@")[0], f"{key} has a password written in its URL"
    assert not [v for v in dockerfile_env(dockerfile) if re.search("PASSWORD|SECRET|TOKEN", v)]
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if re.match(r"\s*[A-Z_]*(PASSWORD|SECRET)[A-Z_]*=", line):
            assert line.split("=", 1)[1].strip() == "", f"{line!r}: leave secrets empty in the example"


def test_the_start_command_runs_existing_cli_commands(
    dockerfile: dict[str, list[str]], compose: dict
) -> None:
    command = compose["services"]["hub"].get("command") or json.loads(dockerfile["CMD"][-1])
    assert command[:2] == ["sh", "-c"]
    steps = [shlex.split(part) for part in command[2].split("&&")]
    assert [s[-2:] if s[0] == "exec" else s for s in steps] == [
        ["evhub", "db", "upgrade"],
        ["evhub", "serve"],
    ]
    runner = CliRunner()
    for step in steps:
        args = step[1:] if step[0] == "evhub" else step[2:]
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, f"`evhub {' '.join(args)}` is not a command: {result.output}"


def test_the_volumes_cover_the_database_and_the_exports_writable_by_the_image_user(
    compose: dict, dockerfile: dict[str, list[str]]
) -> None:
    named = set(compose["volumes"])
    mounts = {
        service: {v.split(":")[1]: v.split(":")[0] for v in spec.get("volumes", [])}
        for service, spec in compose["services"].items()
    }
    assert mounts["db"].get("/var/lib/postgresql/data") in named  # a fresh named volume, not a host folder
    exports = hub_env(compose, dockerfile)["EVHUB_SETTLEMENT_DIR"]
    assert mounts["hub"].get(exports) in named
    assert dockerfile["USER"][-1].split(":")[0] == IMAGE_UID
    # the image creates the folder and gives it to the uid, so the named volume starts out writable by it
    run = " ".join(dockerfile["RUN"])
    assert f"mkdir -p {exports}" in run and re.search(rf"chown -R {IMAGE_UID}(:{IMAGE_UID})? \S*", run)
    owned = re.search(rf"chown -R {IMAGE_UID}(?::{IMAGE_UID})? (\S+)", run)
    assert owned and exports.startswith(owned.group(1))


def test_ports_healthcheck_and_restart_policy_match_the_hub(
    compose: dict, dockerfile: dict[str, list[str]]
) -> None:
    defaults = Settings.model_fields
    env = hub_env(compose, dockerfile)
    http_port = int(env.get("EVHUB_HTTP_PORT", defaults["http_port"].default))
    ocpp_port = int(env.get("EVHUB_OCPP_PORT", defaults["ocpp_port"].default))
    hub = compose["services"]["hub"]
    assert {container_port(p) for p in hub["ports"]} == {http_port, ocpp_port}
    assert {int(p) for p in " ".join(dockerfile["EXPOSE"]).split()} == {http_port, ocpp_port}
    assert env["EVHUB_HTTP_HOST"] == "0.0.0.0" and env["EVHUB_OCPP_HOST"] == "0.0.0.0"
    health = " ".join(hub["healthcheck"]["test"])
    assert f"127.0.0.1:{http_port}/health" in health
    assert "/health" in dockerfile["HEALTHCHECK"][-1]
    for name, service in compose["services"].items():
        assert service.get("restart") == "unless-stopped", name
    assert hub["depends_on"]["db"]["condition"] == "service_healthy"


def test_the_hub_reaches_the_database_and_the_mail_sink_of_the_file(
    compose: dict, dockerfile: dict[str, list[str]]
) -> None:
    services = compose["services"]
    env = hub_env(compose, dockerfile)
    db_url = urlsplit(env["EVHUB_DATABASE_URL"].replace("+asyncpg", ""))
    db_env = services["db"]["environment"]
    assert db_url.hostname in services and db_url.hostname == "db"
    assert db_url.username == db_env["POSTGRES_USER"] and db_url.password == db_env["POSTGRES_PASSWORD"]
    assert db_url.path.lstrip("/") == db_env["POSTGRES_DB"]
    smtp = urlsplit(env["EVHUB_SMTP_URL"])
    assert smtp.hostname in services and "mailpit" in services[smtp.hostname]["image"]
    assert smtp.port == 1025  # Mailpit's SMTP port; its web UI (8025) is the one published
    assert {container_port(p) for p in services[smtp.hostname]["ports"]} == {8025}
