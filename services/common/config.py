"""Typed configuration read from environment variables (12-factor: no config files, no credentials in code)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from common.secrets import Credentials, credentials_for
from contract import environment as env
from contract.environment import Variable
from contract.messaging import QUEUES, Queue


class ConfigError(ValueError):
    """An environment variable is missing or malformed; the message names it."""


class _FromContract:
    """Marker: take the default from the contract Variable (the usual case)."""


_FROM_CONTRACT = _FromContract()


def _raw(variable: Variable, default: str | _FromContract | None) -> str | None:
    """The variable's text, else the given default, else the contract's; None when required and absent."""
    value = os.environ.get(variable.name, "")
    if value != "":
        return value
    return variable.default if isinstance(default, _FromContract) else default


def _required(variable: Variable) -> ConfigError:
    return ConfigError(f"environment variable {variable.name} is required")


def env_str(variable: Variable, default: str | _FromContract | None = _FROM_CONTRACT) -> str:
    """Return the variable, or its contract default; raise ConfigError when it is required and absent.

    ``default`` overrides the contract's default for the few whose default depends on other settings
    (``DATABASE_NAME``: the service's own database; ``AUTH_JWKS_URL``: derived from the issuer).
    """
    value = _raw(variable, default)
    if value is None:
        raise _required(variable)
    return value


def _number(variable: Variable, convert: type[int] | type[float], kind: str) -> int | float:
    """The variable converted by ``convert`` (the contract default when unset); ConfigError names it."""
    raw = _raw(variable, _FROM_CONTRACT)
    if raw is None:
        raise _required(variable)
    try:
        return convert(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {variable.name} must be {kind}, got {raw!r}") from exc


def env_int(variable: Variable, minimum: int = 0) -> int:
    """Return the variable as an int >= ``minimum`` (the contract default when unset)."""
    value = int(_number(variable, int, "an integer"))
    if value < minimum:
        raise ConfigError(f"environment variable {variable.name} must be >= {minimum}, got {value}")
    return value


def env_float(variable: Variable, *, allow_zero: bool = False) -> float:
    """Return the variable as a positive float, or >= 0 with ``allow_zero`` (0 meaning "off" for rates and
    budgets); the contract default when unset."""
    value = float(_number(variable, float, "a number"))
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"environment variable {variable.name} must be {bound}, got {value}")
    return value


def env_bool(variable: Variable) -> bool:
    """Return the variable as a bool (true/false, 1/0, yes/no, on/off; the contract default when unset)."""
    raw = os.environ.get(variable.name, "").strip().lower() or (variable.default or "").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    if raw == "":
        raise _required(variable)
    raise ConfigError(f"environment variable {variable.name} must be true or false, got {raw!r}")


def _login_settings(user: Variable, password: Variable, secret_id: Variable) -> tuple[str, str, str]:
    """(user, password, secret id): a secret id, or a user (its password may be empty); ConfigError otherwise."""
    values = env_str(user), env_str(password), env_str(secret_id)
    if not values[0] and not values[2]:
        # No default user: a forgotten setting must fail at start, not fall back to a superuser or guest.
        raise ConfigError(f"set {user.name} (and {password.name}) or {secret_id.name}")
    return values


def _queue_on_broker(queue: Queue) -> Queue:
    """``queue`` renamed by its variable, if it has one (the dead-letter queue follows the name)."""
    variable = env.QUEUE_VARIABLES.get(queue.name)
    return replace(queue, name=env_str(variable)) if variable is not None else queue


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
    secret_id: str = ""
    """Secrets Manager secret holding the login (then ``user``/``password`` are ignored)."""
    credentials: Credentials = field(init=False, repr=False, compare=False)
    """Where new connections get their login (shared by every copy of these settings' users)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "credentials", credentials_for(self.user, self.password, self.secret_id))

    @classmethod
    def from_env(cls, default_name: str) -> DatabaseSettings:
        """Read DATABASE_* variables; ``default_name`` is the service's own database."""
        sslmode = env_str(env.DATABASE_SSLMODE)
        allowed = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
        if sslmode not in allowed:
            raise ConfigError(f"DATABASE_SSLMODE must be one of {', '.join(allowed)}, got {sslmode!r}")
        user, password, secret_id = _login_settings(env.DATABASE_USER, env.DATABASE_PASSWORD, env.DATABASE_SECRET_ID)
        return cls(
            host=env_str(env.DATABASE_HOST),
            port=env_int(env.DATABASE_PORT, minimum=1),
            name=env_str(env.DATABASE_NAME, default_name),
            user=user,
            password=password,
            secret_id=secret_id,
            sslmode=sslmode,
            sslrootcert=env_str(env.DATABASE_SSLROOTCERT) or None,
            pool_size=env_int(env.DATABASE_POOL_SIZE, minimum=1),
            connect_timeout=env_int(env.DATABASE_CONNECT_TIMEOUT, minimum=1),
        )

    def connect_kwargs(self, application_name: str) -> dict[str, object]:
        """Keyword arguments for ``psycopg2.connect`` without the login (``credentials`` gives it at each
        connect; the password never goes into a DSN string or a log)."""
        kwargs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.name,
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


def shard_database_settings(base: DatabaseSettings, shard: int) -> DatabaseSettings:
    """``base`` (shard 0's settings) as shard ``shard`` reads them: its ``BILLING_SHARD_<k>_DATABASE_HOST``,
    ``_PORT``, ``_NAME`` and ``_SECRET_ID`` (``contract.shards.shard_variable``), each unset one keeping shard
    0's value; shard 0 is ``base`` unchanged. A shard with a secret of its own logs in with it."""
    if shard == 0:
        return base
    if (shard, env.DATABASE_HOST.name) not in env.BILLING_SHARD_VARIABLES:
        raise ConfigError(f"billing shard {shard} is beyond the shard map (contract.shards.MAX_SHARDS)")

    def value(variable: Variable) -> str:
        return env_str(env.BILLING_SHARD_VARIABLES[shard, variable.name])

    host, port, name, secret_id = (value(v) for v in env.SHARD_DATABASE_VARIABLES)
    try:
        port_number = int(port) if port else base.port
    except ValueError:
        name = env.BILLING_SHARD_VARIABLES[shard, env.DATABASE_PORT.name].name
        raise ConfigError(f"environment variable {name} must be an integer, got {port!r}") from None
    return replace(
        base, host=host or base.host, port=port_number, name=name or base.name,
        secret_id=secret_id or base.secret_id,
    )


@dataclass(frozen=True)
class RabbitSettings:
    """Where and how to reach RabbitMQ. ``amqps://`` in RABBITMQ_URL turns TLS on (Amazon MQ requires it).

    ``queues`` holds every queue of ``contract.messaging.QUEUES`` as named on this broker: each may be renamed
    by its variable (``contract.environment.QUEUE_VARIABLES``), its dead-letter queue following the new name.
    """

    url: str
    user: str
    password: str
    heartbeat: int
    connect_timeout: float
    queues: dict[str, Queue] = field(default_factory=dict)
    secret_id: str = ""
    """Secrets Manager secret holding the login (then ``user``/``password`` are ignored)."""
    credentials: Credentials = field(init=False, repr=False, compare=False)
    """Where each (re)connect gets its login."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "credentials", credentials_for(self.user, self.password, self.secret_id))

    @classmethod
    def from_env(cls) -> RabbitSettings:
        """Read the RABBITMQ_* variables and the queue names."""
        url = env_str(env.RABBITMQ_URL)
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ConfigError(f"RABBITMQ_URL must start with amqp:// or amqps://, got scheme {parts.scheme!r}")
        if parts.username or parts.password:
            raise ConfigError(
                "RABBITMQ_URL must not carry credentials; use RABBITMQ_USER and RABBITMQ_PASSWORD or RABBITMQ_SECRET_ID"
            )
        # Required: falling back to guest/guest would be an insecure default.
        user, password, secret_id = _login_settings(env.RABBITMQ_USER, env.RABBITMQ_PASSWORD, env.RABBITMQ_SECRET_ID)
        return cls(
            url=url,
            user=user,
            password=password,
            secret_id=secret_id,
            heartbeat=env_int(env.RABBITMQ_HEARTBEAT, minimum=0),
            connect_timeout=env_float(env.RABBITMQ_CONNECT_TIMEOUT),
            queues={queue.name: _queue_on_broker(queue) for queue in QUEUES},
        )

    def queue(self, queue: Queue) -> Queue:
        """``queue`` of the contract as named on this broker (``.name``, ``.dead_letter_queue``)."""
        return self.queues.get(queue.name, queue)

    @property
    def uses_tls(self) -> bool:
        """True when the broker is reached over amqps://."""
        return self.url.startswith("amqps://")

