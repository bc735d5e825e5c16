"""The local system's profiles and service environments follow the README (Configuration) (no servers)."""

import pytest

from local_system import prereqs
from local_system.credentials import Credentials, load_or_create
from local_system.processes import LocalSystemError
from local_system.profiles import Profile, get_profile
from local_system.services import ServiceProcess
from local_system.system import PARTS, LocalSystem

CREDENTIALS = Credentials("app", "pg-secret", "app", "mq-secret")


def service_env(name: str, profile: str = "test") -> dict[str, str]:
    return ServiceProcess(name, get_profile(profile), lambda: CREDENTIALS).env()


def test_test_profile_ports_match_conventions():
    """The test profile uses the ports the README reserves for test runs."""
    profile = get_profile("test")
    assert (profile.postgres_port, profile.amqp_port, profile.rabbitmq_dist_port, profile.epmd_port) == (
        56432,
        56672,
        56673,
        56369,
    )
    assert profile.service_ports == {"inventory": 18080, "billing": 18081, "gateway": 13000}


def test_dev_profile_ports_match_conventions(monkeypatch):
    """`make up` uses the dev ports, billing on 8081 so it does not clash with inventory's 8080."""
    for name in ("INVENTORY_PORT", "BILLING_PORT", "GATEWAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    profile = get_profile("dev")
    assert (profile.postgres_port, profile.amqp_port, profile.epmd_port) == (55432, 55672, 54369)
    assert profile.service_ports == {"inventory": 8080, "billing": 8081, "gateway": 3000}


def test_billing_port_is_configurable_in_dev(monkeypatch):
    """BILLING_PORT moves billing's local port."""
    monkeypatch.setenv("BILLING_PORT", "9191")
    assert get_profile("dev").service_ports["billing"] == 9191


def test_profile_comes_from_environment(monkeypatch):
    """LOCAL_PROFILE selects the profile when none is given; unknown names are refused."""
    monkeypatch.setenv("LOCAL_PROFILE", "test")
    assert get_profile().name == "test"
    with pytest.raises(LocalSystemError, match="unknown profile"):
        get_profile("prod")


def test_inventory_env_points_at_movies_db_only():
    """inventory gets movies_db over TCP 127.0.0.1 and no broker settings."""
    env = service_env("inventory")
    assert (env["DATABASE_HOST"], env["DATABASE_PORT"], env["DATABASE_NAME"]) == ("127.0.0.1", "56432", "movies_db")
    assert (env["DATABASE_USER"], env["DATABASE_PASSWORD"]) == ("app", "pg-secret")
    assert (env["PORT"], env["BIND_HOST"]) == ("18080", "127.0.0.1")
    assert "RABBITMQ_URL" not in env


def test_billing_env_has_database_and_broker():
    """billing gets billing_db, the broker URL without credentials, the credentials apart, and the queue."""
    env = service_env("billing")
    assert env["DATABASE_NAME"] == "billing_db"
    assert env["RABBITMQ_URL"] == "amqp://127.0.0.1:56672/"
    assert (env["RABBITMQ_USER"], env["RABBITMQ_PASSWORD"]) == ("app", "mq-secret")
    assert env["BILLING_QUEUE"] == "billing_queue"
    assert env["PORT"] == "18081"


def test_gateway_env_has_inventory_url_and_no_database():
    """The gateway reaches inventory by INVENTORY_URL and never gets database credentials."""
    env = service_env("gateway")
    assert env["INVENTORY_URL"] == "http://127.0.0.1:18080"
    assert env["PORT"] == "13000"
    assert not any(key.startswith("DATABASE_") for key in env)


def test_stray_database_variables_do_not_leak_into_services(monkeypatch):
    """A DATABASE_* variable in the developer's shell does not reach a service that has no database."""
    monkeypatch.setenv("DATABASE_PASSWORD", "from-my-shell")
    assert "DATABASE_PASSWORD" not in service_env("gateway")


def test_credentials_file_is_created_private_and_stable(tmp_path):
    """credentials.env is created with mode 0600 and random passwords, and read back unchanged."""
    path = tmp_path / "credentials.env"
    first = load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert first.postgres_password != first.rabbitmq_password
    assert len(first.postgres_password) >= 24
    assert load_or_create(path) == first


def test_missing_servers_without_root_name_the_apt_command(monkeypatch):
    """Not root and PostgreSQL/RabbitMQ missing: a clear error with the exact apt command, nothing installed."""
    monkeypatch.setattr(prereqs, "postgres_bin_dir", lambda: None)
    monkeypatch.setattr(prereqs, "rabbitmq_scripts_dir", lambda: None)
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(prereqs.subprocess, "run", lambda *a, **k: pytest.fail("must not run apt-get"))
    with pytest.raises(LocalSystemError, match=r"sudo apt-get install -y postgresql rabbitmq-server"):
        prereqs.ensure_servers()


def test_every_part_has_a_log_file():
    """`make logs SERVICE=<part>` accepts every part the CLI offers, the Cognito emulator included."""
    assert set(LocalSystem("test").log_files()) == set(PARTS)


def test_exclusive_use_with_no_timeout_refuses_at_once():
    """A second holder with timeout=0 (``reset``) is refused without waiting; the lock is free afterwards."""
    # Its own lock file (named after the profile and port): never the test profile's session lock.
    profile = Profile("unit-lock", 1, 2, 3, 4, {"inventory": 5, "billing": 6, "gateway": 7})
    said = []
    with LocalSystem(profile).exclusive_use(timeout=0):
        with pytest.raises(LocalSystemError, match="in use by another run"):
            with LocalSystem(profile).exclusive_use(timeout=0, waiting=said.append):
                pytest.fail("got the lock twice")
    assert said == []
    with LocalSystem(profile).exclusive_use(timeout=0):
        pass
