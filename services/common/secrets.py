"""Login credentials of a database or broker: fixed ones from the environment, or a Secrets Manager secret.

A secret is read once, then re-read only when the server refuses the login (docs/operations.md, "Credential
rotation"): during a single-user rotation the server gets the new password (``setSecret``) before Secrets
Manager moves ``AWSCURRENT`` to it (``finishSecret``), so a login refused with ``AWSCURRENT`` is retried with
``AWSPENDING``. Re-reads are rate-limited per secret, so a wrong password cannot turn every request into a
Secrets Manager call. Open connections are never touched: the servers keep established sessions when a
password changes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from common.secret_fetch import ChildProcessSecretsClient
from contract import environment as env

log = logging.getLogger(__name__)

#: Read by boto3's own credential chain, never by this code: unset on AWS (the chain then uses the task role),
#: the local emulator's dummy keys on ``make up``. Named here so the contract lists them for every service
#: that reads a secret (tests/unit/test_services_environment.py counts references).
SDK_CREDENTIAL_VARIABLES = (env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY)
#: Least time between two reads of one secret.
MIN_REFRESH_SECONDS = 1.0
CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


class SecretUnavailable(RuntimeError):
    """The secret could not be read or does not hold a username and a password."""


@dataclass(frozen=True)
class Login:
    """A user name and its password (``repr`` hides the password: logins end up in tracebacks)."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"Login(user={self.user!r}, password=***)"


class Credentials(Protocol):
    """Where a connection gets its login: ``current()`` before connecting, ``login_refused()`` after a refusal."""

    def current(self) -> Login:
        """The login to connect with now."""
        ...

    def login_refused(self, refused: Login) -> bool:
        """The server refused ``refused``: return True when there is now another login worth one more try."""
        ...


class StaticCredentials:
    """A login fixed at start (DATABASE_USER/PASSWORD, RABBITMQ_USER/PASSWORD): nothing to re-read."""

    def __init__(self, login: Login):
        self._login = login

    def current(self) -> Login:
        """The configured login."""
        return self._login

    def login_refused(self, refused: Login) -> bool:
        """Nothing else to try."""
        return False


def secretsmanager_client() -> Any:
    """A boto3 Secrets Manager client for AWS_REGION (and AWS_ENDPOINT_URL_SECRETS_MANAGER when set).

    Used by the short-lived reader process (``common.secret_fetch``), so the services' long-lived workers never
    import boto3. Short timeouts: a request may be waiting for its connection.
    """
    import boto3
    from botocore.config import Config

    from common.config import env_str  # here: common.config imports this module

    return boto3.client(
        "secretsmanager",
        region_name=env_str(env.AWS_REGION) or None,
        endpoint_url=env_str(env.AWS_ENDPOINT_URL_SECRETS_MANAGER) or None,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}),
    )


def parse_secret(text: str, secret_id: str) -> Login:
    """The login in a secret's JSON (``username`` and ``password``, as RDS and our broker secrets hold)."""
    try:
        value = json.loads(text)
        return Login(str(value["username"]), str(value["password"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise SecretUnavailable(f"secret {secret_id} is not JSON with username and password") from exc


class SecretCredentials:
    """The login held by a Secrets Manager secret; thread-safe, one instance per connection pool or client."""

    def __init__(
        self,
        secret_id: str,
        client_factory: Callable[[], Any] = ChildProcessSecretsClient,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.secret_id = secret_id
        self._client_factory = client_factory
        self._client: Any = None
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._login: Login | None = None
        self._refreshed_at: float | None = None
        """When a refused login last made us re-read the secret (the first read does not count)."""

    def _read(self, stage: str) -> Login | None:
        """The login of the version in ``stage``; None when no version has that stage."""
        if self._client is None:
            self._client = self._client_factory()
        try:
            response = self._client.get_secret_value(SecretId=self.secret_id, VersionStage=stage)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if stage == PENDING and code == "ResourceNotFoundException":
                return None  # no rotation in progress
            raise SecretUnavailable(f"cannot read secret {self.secret_id} ({stage}): {code or exc}") from exc
        return parse_secret(response["SecretString"], self.secret_id)

    def current(self) -> Login:
        """The login last read (AWSCURRENT on first use)."""
        with self._lock:
            if self._login is None:
                self._login = self._read(CURRENT)
            return self._login

    def login_refused(self, refused: Login) -> bool:
        """Re-read the secret (AWSCURRENT, then AWSPENDING) unless another thread just did; True when the
        login to try now differs from ``refused``."""
        with self._lock:
            if self._login is not None and self._login != refused:
                return True  # another thread already switched to a newer login
            now = self._clock()
            if self._refreshed_at is not None and now - self._refreshed_at < self._min_refresh:
                return False
            self._refreshed_at = now
            for stage in (CURRENT, PENDING):
                candidate = self._read(stage)
                if candidate is not None and candidate != refused:
                    log.warning(
                        "login refused; using the secret's newer password",
                        extra={"secret_id": self.secret_id, "stage": stage, "user": candidate.user},
                    )
                    self._login = candidate
                    return True
            return False


T = TypeVar("T")


def connect_with_login(
    credentials: Credentials, connect: Callable[[Login], T], is_refused: Callable[[BaseException], bool]
) -> T:
    """``connect(login)`` with the current login; when the server refuses that login (``is_refused``) and the
    credentials have a newer one (a rotation since this process read the secret), once more with it."""
    login = credentials.current()
    try:
        return connect(login)
    except Exception as exc:
        if not is_refused(exc) or not credentials.login_refused(login):
            raise
    return connect(credentials.current())


def credentials_for(user: str, password: str, secret_id: str) -> Credentials:
    """The secret's login when ``secret_id`` is set, else the fixed ``user``/``password``."""
    if secret_id:
        return SecretCredentials(secret_id)
    return StaticCredentials(Login(user, password))
