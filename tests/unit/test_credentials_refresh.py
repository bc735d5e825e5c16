"""services/common/secrets.py: when a login is refused, the secret is re-read (AWSCURRENT, then AWSPENDING),
at most once per second, shared by all threads; and the settings accept a user or a secret id."""

from __future__ import annotations

import json

import pytest

from common.config import ConfigError, DatabaseSettings, RabbitSettings
from common.secrets import Login, SecretCredentials, SecretUnavailable, StaticCredentials, credentials_for


class MissingError(Exception):
    def __init__(self):
        super().__init__("not found")
        self.response = {"Error": {"Code": "ResourceNotFoundException"}}


class FakeClient:
    """Secrets Manager with one secret whose stages the test sets; counts reads."""

    def __init__(self, current: str, pending: str | None = None):
        self.passwords = {"AWSCURRENT": current, "AWSPENDING": pending}
        self.reads: list[str] = []

    def get_secret_value(self, SecretId, VersionStage):
        self.reads.append(VersionStage)
        password = self.passwords.get(VersionStage)
        if password is None:
            raise MissingError()
        return {"SecretString": json.dumps({"username": "svc", "password": password})}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _credentials(client, clock=None):
    return SecretCredentials("db", client_factory=lambda: client, clock=clock or Clock())


def test_the_secret_is_read_once_until_a_login_is_refused():
    client = FakeClient("one")
    credentials = _credentials(client)
    assert credentials.current() == credentials.current() == Login("svc", "one")
    assert client.reads == ["AWSCURRENT"]


def test_a_refused_login_switches_to_a_new_awscurrent():
    """After finishSecret: AWSCURRENT holds the new password."""
    client, clock = FakeClient("one"), Clock()
    credentials = _credentials(client, clock)
    old = credentials.current()
    client.passwords["AWSCURRENT"] = "two"
    clock.now += 5
    assert credentials.login_refused(old) is True
    assert credentials.current() == Login("svc", "two")


def test_a_refused_awscurrent_falls_back_to_awspending():
    """Between setSecret and finishSecret the server only knows the pending password."""
    client, clock = FakeClient("one"), Clock()
    credentials = _credentials(client, clock)
    old = credentials.current()
    client.passwords["AWSPENDING"] = "two"
    clock.now += 5
    assert credentials.login_refused(old) is True
    assert credentials.current() == Login("svc", "two")
    assert client.reads == ["AWSCURRENT", "AWSCURRENT", "AWSPENDING"]


def test_nothing_new_means_no_second_try():
    """No rotation under way (no AWSPENDING): the refusal stands (a wrong password is reported, not retried)."""
    client, clock = FakeClient("one"), Clock()
    credentials = _credentials(client, clock)
    clock.now += 5
    assert credentials.login_refused(credentials.current()) is False


def test_reads_are_rate_limited_per_secret():
    """A refusal right after the first read re-reads at once; another within a second does not; later it does."""
    client, clock = FakeClient("one"), Clock()
    credentials = _credentials(client, clock)
    login = credentials.current()
    assert credentials.login_refused(login) is False
    assert client.reads == ["AWSCURRENT", "AWSCURRENT", "AWSPENDING"]
    clock.now += 0.5
    assert credentials.login_refused(login) is False
    assert len(client.reads) == 3
    clock.now += 1
    client.passwords["AWSPENDING"] = "two"
    assert credentials.login_refused(login) is True
    assert len(client.reads) == 5


def test_a_thread_refused_with_an_old_login_retries_with_the_one_another_thread_found():
    """Many connections refused at once: one reads the secret, the others just take its result."""
    client, clock = FakeClient("one"), Clock()
    credentials = _credentials(client, clock)
    old = credentials.current()
    client.passwords["AWSCURRENT"] = "two"
    clock.now += 5
    assert credentials.login_refused(old) is True
    reads = len(client.reads)
    assert credentials.login_refused(old) is True
    assert len(client.reads) == reads


def test_an_unreadable_or_malformed_secret_is_reported():
    class Broken:
        def get_secret_value(self, **kwargs):
            return {"SecretString": "not json"}

    with pytest.raises(SecretUnavailable, match="username and password"):
        _credentials(Broken()).current()


def test_static_credentials_never_change():
    credentials = credentials_for("app", "pw", "")
    assert isinstance(credentials, StaticCredentials)
    assert credentials.current() == Login("app", "pw")
    assert credentials.login_refused(Login("app", "pw")) is False
    assert "pw" not in repr(credentials.current())


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_SECRET_ID", "RABBITMQ_USER", "RABBITMQ_PASSWORD",
                 "RABBITMQ_SECRET_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_need_a_user_or_a_secret(clean_env):
    """Neither given: the error names both ways, for the database and the broker."""
    with pytest.raises(ConfigError, match=r"DATABASE_USER.*DATABASE_SECRET_ID"):
        DatabaseSettings.from_env("movies_db")
    with pytest.raises(ConfigError, match=r"RABBITMQ_USER.*RABBITMQ_SECRET_ID"):
        RabbitSettings.from_env()


def test_settings_with_a_secret_read_it_lazily(clean_env):
    """A secret id gives secret credentials; nothing is fetched before the first connection."""
    clean_env.setenv("DATABASE_SECRET_ID", "prod/inventory")
    settings = DatabaseSettings.from_env("movies_db")
    assert isinstance(settings.credentials, SecretCredentials)
    assert settings.credentials.secret_id == "prod/inventory"
    assert "user" not in settings.connect_kwargs("inventory")
    clean_env.setenv("RABBITMQ_USER", "app")
    assert RabbitSettings.from_env().credentials.current() == Login("app", "")
