"""Typed configuration read from environment variables (12-factor: no config files, no credentials in code)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, urlsplit


class ConfigError(ValueError):
    """An environment variable is missing or malformed; the message names it."""


def env_str(name: str, default: str | None = None) -> str:
    """Return the variable, or ``default``; raise ConfigError when it is required and absent."""
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"environment variable {name} is required")
        return default
    return value


def env_int(name: str, default: int, minimum: int = 0) -> int:
    """Return the variable as an int >= ``minimum``, or ``default`` when unset."""
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"environment variable {name} must be >= {minimum}, got {value}")
    return value


def env_float(name: str, default: float) -> float:
    """Return the variable as a positive float, or ``default`` when unset."""
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"environment variable {name} must be > 0, got {value}")
    return value


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a bool (true/false, 1/0, yes/no, on/off)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"environment variable {name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class DatabaseSettings:
    """Where and how to reach PostgreSQL. TLS is chosen with DATABASE_SSLMODE (AWS sets ``require``)."""

    host: str
    port: int
    name: str
    user: str
    password: str
    sslmode: str
    sslrootcert: str | None
    pool_size: int
    connect_timeout: int

    @classmethod
    def from_env(cls, default_name: str) -> DatabaseSettings:
        """Read DATABASE_* variables; ``default_name`` is the service's own database."""
        sslmode = env_str("DATABASE_SSLMODE", "prefer")
        allowed = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
        if sslmode not in allowed:
            raise ConfigError(f"DATABASE_SSLMODE must be one of {', '.join(allowed)}, got {sslmode!r}")
        return cls(
            host=env_str("DATABASE_HOST", "127.0.0.1"),
            port=env_int("DATABASE_PORT", 5432, minimum=1),
            name=env_str("DATABASE_NAME", default_name),
            # No default user or password: a forgotten setting must fail at start, not fall back to a superuser.
            user=env_str("DATABASE_USER"),
            password=env_str("DATABASE_PASSWORD", ""),
            sslmode=sslmode,
            sslrootcert=os.environ.get("DATABASE_SSLROOTCERT") or None,
            pool_size=env_int("DATABASE_POOL_SIZE", 8, minimum=1),
            connect_timeout=env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1),
        )

    def connect_kwargs(self, application_name: str) -> dict[str, object]:
        """Keyword arguments for ``psycopg2.connect`` (the password never goes into a DSN string or a log)."""
        kwargs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.name,
            "user": self.user,
            "password": self.password,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout,
            "application_name": application_name,
            # Detect a dead server on an idle pooled connection instead of hanging on it.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            # A server that hangs (rather than closes) is given up on after 15 s of unacknowledged data,
            # instead of the kernel's many minutes; no query is cut short by this.
            "tcp_user_timeout": 15000,
        }
        if self.sslrootcert:
            kwargs["sslrootcert"] = self.sslrootcert
        return kwargs


@dataclass(frozen=True)
class RabbitSettings:
    """Where and how to reach RabbitMQ. ``amqps://`` in RABBITMQ_URL turns TLS on (Amazon MQ requires it)."""

    url: str
    user: str
    password: str
    queue: str
    heartbeat: int
    connect_timeout: float

    @classmethod
    def from_env(cls) -> RabbitSettings:
        """Read RABBITMQ_* and BILLING_QUEUE variables."""
        url = env_str("RABBITMQ_URL", "amqp://127.0.0.1:5672/")
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ConfigError(f"RABBITMQ_URL must start with amqp:// or amqps://, got scheme {parts.scheme!r}")
        if parts.username or parts.password:
            raise ConfigError("RABBITMQ_URL must not carry credentials; use RABBITMQ_USER and RABBITMQ_PASSWORD")
        return cls(
            url=url,
            # Required: falling back to guest/guest would be an insecure default.
            user=env_str("RABBITMQ_USER"),
            password=env_str("RABBITMQ_PASSWORD"),
            queue=env_str("BILLING_QUEUE", "billing_queue"),
            heartbeat=env_int("RABBITMQ_HEARTBEAT", 30, minimum=0),
            connect_timeout=env_float("RABBITMQ_CONNECT_TIMEOUT", 5.0),
        )

    @property
    def dead_letter_queue(self) -> str:
        """Name of the queue that keeps messages billing could not process, with the reason."""
        return f"{self.queue}.dlq"

    @property
    def uses_tls(self) -> bool:
        """True when the broker is reached over amqps://."""
        return self.url.startswith("amqps://")

    def url_with_credentials(self) -> str:
        """The URL with credentials embedded, for pika only; never log it."""
        parts = urlsplit(self.url)
        netloc = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@{parts.netloc}"
        return parts._replace(netloc=netloc).geturl()
