"""Settings, from the environment (prefix ``EVHUB_``) or a ``.env`` file, validated at start.

A wrong value stops the process with a message naming the variable (see :func:`load_settings`).
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.clock import pin_clock
from kernel.sealed import parse_keys

DEFAULT_SQLITE_FILE = "kernel.db"
SECRET_FIELDS = frozenset(
    {"password_cache_key", "portal_secret", "secrets_key", "stripe_api_key", "stripe_webhook_secret"}
)
"""Fields whose value an error message never repeats."""
MIN_SECRET_LENGTH = 16


class SettingsError(ValueError):
    """Invalid configuration; the message names the environment variable."""


class Settings(BaseSettings):
    """The hub's configuration. Each field is the environment variable ``EVHUB_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="EVHUB_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///./{DEFAULT_SQLITE_FILE}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB",
    )
    # -- database pool and password checks (issue 15: admission control, Argon2 off the event loop) --
    db_pool_size: int = Field(
        default=10, ge=1, le=1000, description="PostgreSQL connections each process keeps open in its pool"
    )
    db_max_overflow: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Extra PostgreSQL connections a process may open above the pool size",
    )
    db_pool_timeout: float = Field(
        default=10,
        gt=0,
        description="How long a request waits for a free database connection before it is refused (s; "
        "chargers get HTTP 503 with Retry-After at the upgrade)",
    )
    password_workers: int = Field(
        default=2, ge=1, le=64, description="Threads verifying charger passwords (Argon2) in each process"
    )
    password_queue: int = Field(
        default=32,
        ge=1,
        description="Charger password checks that may wait for a thread; beyond it the upgrade answers 503",
    )
    password_cache_key: str = Field(
        default="",
        repr=False,
        description=f"Key (at least {MIN_SECRET_LENGTH} characters) of the HMAC under which successful charger "
        "password checks are remembered in the database for every process; empty: a random key per process "
        "(each process then verifies each charger once)",
    )
    password_cache_ttl: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="How long a successful charger password check is remembered (s)",
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
    # -- bad input (issue 15 item 5): request bodies are cut off while streaming, before they are read whole --
    http_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest HTTP request body accepted (API, OCPI, portal, webhooks); bigger is answered 413",
    )
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
        default="http://localhost:8000",
        description="Absolute http(s) URL partners and users reach the HTTP app at (a trailing / is dropped)",
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
    late_data_grace: float = Field(
        default=600,
        ge=0,
        description="A session whose data may still be incomplete (ended before it started, a sequence gap) "
        "is priced this many seconds after its end, so late messages land before the CDR (s)",
    )
    max_session_span: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="A session longer than this is held for review instead of priced (s)",
    )
    clock_skew: float = Field(
        default=300,
        ge=0,
        description="A charger timestamp further than this in the future is implausible: the session is held (s)",
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
        default="",
        description=f"Key signing portal cookies, at least {MIN_SECRET_LENGTH} characters "
        "(default: a random key stored in the database)",
    )
    secrets_key: str = Field(
        default="",
        description="Key sealing the tokens the hub presents to OCPI partners, at least "
        f"{MIN_SECRET_LENGTH} characters; several comma-separated to rotate (the first seals, every one unseals; "
        "default: a built-in development key, never for production)",
    )
    clock_start: datetime | None = Field(
        default=None,
        description="Pin the clock: ISO 8601 instant with offset (e.g. 2026-11-30T23:59:00Z) from which time "
        "runs on at the real rate (tests, demos; empty: real time)",
    )
    stripe_api_key: str = Field(
        default="",
        repr=False,
        description="Stripe secret key (sk_...) the hub collects payments with; empty: collection is off "
        "(invoices are still issued)",
    )
    stripe_publishable_key: str = Field(
        default="", description="Stripe publishable key (pk_...) the portal's payment method page uses"
    )
    stripe_api_base: str | None = Field(
        default=None,
        description="Base URL of the Stripe API (empty: Stripe itself; localstripe's URL in the tests and the demo)",
    )
    stripe_webhook_secret: str = Field(
        default="",
        repr=False,
        description="Signing secret (whsec_...) of Stripe's webhook to /billing/webhooks/stripe; empty: events "
        "are refused",
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

    @field_validator("ocpp_host", "http_host", "settlement_dir")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL, e.g. https://hub.example.com")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    @field_validator("stripe_api_key", "stripe_publishable_key", "stripe_webhook_secret")
    @classmethod
    def _check_stripe_key(cls, value: str, info: ValidationInfo) -> str:
        prefixes = {
            "stripe_api_key": ("sk_", "rk_"),
            "stripe_publishable_key": ("pk_",),
            "stripe_webhook_secret": ("whsec_",),
        }[str(info.field_name)]
        value = value.strip()
        if value and not value.startswith(prefixes):
            raise ValueError(f"must start with {' or '.join(prefixes)} (or be unset)")
        return value

    @field_validator("stripe_api_base", mode="before")
    @classmethod
    def _check_stripe_api_base(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            parts = urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:8420")
            return value.strip().rstrip("/")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://[user:pass@]host[:port][?starttls=1] or smtps://host[:port]")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number or out of range
        except ValueError:
            raise ValueError("has a port that is not a number from 0 to 65535") from None
        timeout = parse_qs(parts.query).get("timeout", ["20"])[-1]
        try:
            if float(timeout) <= 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"timeout={timeout!r} is not a positive number of seconds") from None
        return value

    @field_validator("mail_from")
    @classmethod
    def _check_mail_from(cls, value: str) -> str:
        _name, address = parseaddr(value)
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain or "@" in local or any(c.isspace() for c in address):
            raise ValueError('must be an email address, e.g. receipts@example.com or "Name <receipts@...>"')
        return value

    @field_validator("portal_time_zone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone, e.g. Europe/Amsterdam or UTC") from None
        return value

    @field_validator("portal_secret", "password_cache_key")
    @classmethod
    def _check_secret(cls, value: str) -> str:
        if value and len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters (or unset)")
        return value

    @field_validator("secrets_key")
    @classmethod
    def _check_secrets_key(cls, value: str) -> str:
        return ",".join(parse_keys(value))

    @field_validator("clock_start", mode="before")
    @classmethod
    def _check_clock_start(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("is not an ISO 8601 timestamp, e.g. 2026-11-30T23:59:00Z") from None
        if isinstance(value, datetime) and value.utcoffset() is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-30T23:59:00Z or +01:00")
        return value

    @field_validator("ocpp_tls_cert", "ocpp_tls_key", "ocpp_tls_ca")
    @classmethod
    def _check_pem_file(cls, value: str, info: ValidationInfo) -> str:
        if value and not Path(value).is_file():
            raise ValueError("is not a file")
        cert = info.data.get("ocpp_tls_cert")
        if info.field_name == "ocpp_tls_key" and cert is not None and bool(value) != bool(cert):
            raise ValueError("EVHUB_OCPP_TLS_CERT and EVHUB_OCPP_TLS_KEY are set together or not at all")
        if info.field_name == "ocpp_tls_ca" and value and cert == "":
            raise ValueError(
                "needs EVHUB_OCPP_TLS_CERT and EVHUB_OCPP_TLS_KEY (client certificates need wss://)"
            )
        return value

    @property
    def is_default_sqlite(self) -> bool:
        """True for the embedded SQLite default, which the hub may upgrade by itself."""
        return self.database_url.startswith("sqlite+aiosqlite://")

    def sqlite_path(self) -> Path | None:
        if not self.database_url.startswith("sqlite+aiosqlite:///"):
            return None
        return Path(self.database_url.removeprefix("sqlite+aiosqlite:///"))


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings`, turning validation errors into one :class:`SettingsError` naming variables.

    With ``EVHUB_CLOCK_START`` set, the process clock (:mod:`kernel.clock`) is pinned to it."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            shown = _shown(field, err.get("input"))
            problems.append(f"EVHUB_{field.upper()}={shown}: {_message(err['msg'])}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
    if settings.clock_start is not None:
        pin_clock(settings.clock_start)
    return settings


def _message(msg: str) -> str:
    """pydantic's message without the prefix it adds to a validator's ValueError."""
    return msg.removeprefix("Value error, ")


def _shown(field: str, value: object) -> str:
    """The value as an error message may show it: secrets hidden, a URL's password masked."""
    if field in SECRET_FIELDS:
        return "<hidden>"
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            value = urlunsplit(parts._replace(netloc=netloc))
    return repr(value)
