"""Settings, from the environment (prefix ``EVHUB_``) or a ``.env`` file, validated at start.

A wrong value stops the process with a message naming the variable (see :func:`load_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_FILE = "evhub.db"


class SettingsError(ValueError):
    """Invalid configuration; the message names the environment variable."""


class Settings(BaseSettings):
    """The hub's configuration. Each field is the environment variable ``EVHUB_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="EVHUB_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///./{DEFAULT_SQLITE_FILE}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB",
    )
    ocpp_host: str = Field(default="0.0.0.0", description="Address the OCPP websocket listener binds to")
    ocpp_port: int = Field(default=9000, ge=0, le=65535, description="Port of the OCPP websocket listener")
    ocpp_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="OCPP listener processes sharing the port (SO_REUSEPORT, Linux); more than 1 needs PostgreSQL",
    )
    http_host: str = Field(default="0.0.0.0", description="Address of the HTTP app (API, OCPI, portal)")
    http_port: int = Field(default=8000, ge=0, le=65535, description="Port of the HTTP app")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level")
    log_format: Literal["json", "kv"] = Field(default="kv", description="json or key=value log lines")
    node_name: str = Field(default="", description="This process's name in a cluster (default: host:pid)")
    auto_migrate: bool = Field(
        default=False, description="Apply migrations at start even on a non-default database"
    )
    api_auth: bool = Field(
        default=True,
        description="Require an API key (Authorization: Bearer) on /api; false only on closed networks",
    )
    public_url: str = Field(
        default="http://localhost:8000", description="Base URL partners use to reach the HTTP app"
    )
    heartbeat_interval: int = Field(
        default=300, ge=10, description="Heartbeat interval given to chargers (s)"
    )
    ocpp_tls_cert: str = Field(
        default="",
        description="PEM certificate for wss:// (OCPP security profiles 2 and 3); empty: plain ws://",
    )
    ocpp_tls_key: str = Field(default="", description="PEM private key matching EVHUB_OCPP_TLS_CERT")
    ocpp_tls_ca: str = Field(
        default="",
        description="PEM CA bundle for charger client certificates (security profile 3); empty: profile 3 off",
    )
    ocpp_max_frame_bytes: int = Field(
        default=65536, ge=1024, description="Largest OCPP websocket frame accepted; bigger closes with 1009"
    )
    ocpp_ping_interval: float = Field(
        default=60, ge=0, description="Websocket ping interval to chargers (s); 0 disables pings"
    )
    ocpp_ping_timeout: float = Field(default=30, gt=0, description="Close a charger not answering a ping (s)")
    ocpp_heartbeat_grace: float = Field(
        default=2.5,
        ge=1,
        description="A charger silent for heartbeat_interval x this factor is marked offline and disconnected",
    )
    ocpp_command_timeout: float = Field(
        default=30, gt=0, description="How long a remote command waits for the charger's answer (s)"
    )
    ocpp_rate_limit: float = Field(
        default=20, gt=0, description="Sustained OCPP messages per second a charger may send"
    )
    ocpp_rate_burst: int = Field(
        default=200,
        ge=1,
        description="Message burst a charger may send above the rate limit before disconnect",
    )
    smtp_url: str = Field(default="", description="smtp://[user:pass@]host:port[?starttls=1] for receipts")
    mail_from: str = Field(default="receipts@evhub.local", description="Sender of receipt emails")
    settlement_dir: str = Field(
        default="settlement-out",
        description="Folder for the monthly settlement's CSV, Parquet and HTML exports",
    )
    portal_time_zone: str = Field(
        default="UTC", description="IANA zone the portal uses for calendar days and months"
    )
    portal_secret: str = Field(
        default="", description="Key signing portal cookies (default: a random key stored in the database)"
    )

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not (value.startswith("sqlite+aiosqlite://") or value.startswith("postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (the async drivers evhub uses)"
            )
        return value

    @field_validator("ocpp_workers")
    @classmethod
    def _check_workers(cls, value: int, info: ValidationInfo) -> int:
        url = info.data.get("database_url", "")
        if value > 1 and not url.startswith("postgresql"):
            raise ValueError(
                "more than one OCPP worker needs PostgreSQL (the workers route commands to each other with "
                "LISTEN/NOTIFY; SQLite has one writer)"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def is_default_sqlite(self) -> bool:
        """True for the embedded SQLite default, which the hub may upgrade by itself."""
        return self.database_url.startswith("sqlite+aiosqlite://")

    def sqlite_path(self) -> Path | None:
        if not self.database_url.startswith("sqlite+aiosqlite:///"):
            return None
        return Path(self.database_url.removeprefix("sqlite+aiosqlite:///"))


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings`, turning validation errors into one :class:`SettingsError` naming variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            value = err.get("input")
            problems.append(f"EVHUB_{field.upper()}={value!r}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
