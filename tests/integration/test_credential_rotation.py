"""Rotation against the real servers and the local Secrets Manager: what a running service does with its new
connections while a password rotates (``make rotate-credentials`` code path, local_system/rotation.py).

Open connections survive a password change; a new one refused with the old password makes the service re-read
the secret: AWSCURRENT after finishSecret, AWSPENDING in the window between setSecret and finishSecret.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from common.config import DatabaseSettings, RabbitSettings
from common.db import ConnectionPool, DatabaseUnavailable
from gateway.publisher import BillingPublisher

pytestmark = pytest.mark.integration


def _use_service_env(system, service, monkeypatch, prefixes=("DATABASE_", "RABBITMQ_", "AWS_")):
    for key, value in system.service_env(service).items():
        if key.startswith(prefixes):
            monkeypatch.setenv(key, value)


@pytest.fixture
def inventory_settings(test_infrastructure, monkeypatch) -> DatabaseSettings:
    """inventory's database settings exactly as the local system gives them (a secret id, no password)."""
    _use_service_env(test_infrastructure, "inventory", monkeypatch)
    return DatabaseSettings.from_env("movies_db")


def _ping_new_connection(pool: ConnectionPool) -> None:
    pool.close()  # drop the idle connections: the next query needs a new login
    pool.ping()


def test_a_pool_logs_in_again_after_a_database_rotation(test_infrastructure, inventory_settings):
    """Idle connections keep working across the rotation; a new one uses the rotated password."""
    pool = ConnectionPool(inventory_settings, "rotation-test")
    pool.ping()
    before = inventory_settings.credentials.current()
    test_infrastructure.rotate_credentials("inventory")
    pool.ping()  # the pooled session is untouched by ALTER ROLE
    _ping_new_connection(pool)
    assert inventory_settings.credentials.current() != before
    pool.close()


def test_new_connections_use_awspending_before_finish_secret(test_infrastructure, inventory_settings, monkeypatch):
    """Between setSecret and finishSecret only AWSPENDING works: a pool that read AWSCURRENT before the rotation,
    and one that reads it for the first time inside the window, both connect."""
    early = ConnectionPool(inventory_settings, "rotation-test-early")
    early.ping()
    seen = []

    def in_the_window(step: str) -> None:
        if step != "setSecret":
            return
        api = test_infrastructure.secrets_api()
        current, pending = (api.login("local-test/inventory", stage) for stage in ("AWSCURRENT", "AWSPENDING"))
        assert current != pending
        _ping_new_connection(early)
        late = ConnectionPool(DatabaseSettings.from_env("movies_db"), "rotation-test-late")
        late.ping()
        seen.append((early._credentials.current(), late._credentials.current(), pending))
        late.close()

    test_infrastructure.rotate_credentials("inventory", after_step=in_the_window)
    [(early_login, late_login, pending)] = seen
    assert early_login.password == late_login.password == pending.password
    early.close()


def test_a_fixed_password_does_not_survive_a_rotation(test_infrastructure, monkeypatch):
    """The failure rotation used to cause (ECS injects the password once): with DATABASE_USER/PASSWORD fixed at
    start, new connections are refused after the rotation. Proves the tests above exercise the re-read."""
    login = test_infrastructure.credentials.database("movies_db")
    _use_service_env(test_infrastructure, "inventory", monkeypatch)
    monkeypatch.delenv("DATABASE_SECRET_ID")
    monkeypatch.setenv("DATABASE_USER", login.user)
    monkeypatch.setenv("DATABASE_PASSWORD", login.password)
    pool = ConnectionPool(DatabaseSettings.from_env("movies_db"), "rotation-test-static")
    pool.ping()
    test_infrastructure.rotate_credentials("inventory")
    with pytest.raises(DatabaseUnavailable, match="password authentication failed"):
        _ping_new_connection(pool)


@pytest.fixture
def publisher(test_infrastructure, rabbitmq, monkeypatch):
    """The gateway's publisher with the local system's broker settings, on a queue of its own."""
    _use_service_env(test_infrastructure, "gateway", monkeypatch, ("RABBITMQ_", "AWS_"))
    queue = f"rotation_it_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BILLING_QUEUE", queue)
    monkeypatch.setenv("BILLING_EXPRESS_QUEUE", f"{queue}.express")
    publisher = BillingPublisher(RabbitSettings.from_env())
    yield publisher
    publisher._close()
    rabbitmq.delete(queue, f"{queue}.dlq", f"{queue}.express", f"{queue}.express.dlq")


def test_the_publisher_publishes_on_new_connections_throughout_a_broker_rotation(test_infrastructure, publisher):
    """A fresh AMQP connection at every step of the broker's rotation (the Lambda's code) still logs in."""
    publisher.publish(b"{}", "before")
    published = []

    def reconnect_and_publish(step: str) -> None:
        publisher._close()  # the next publish needs a new login
        published.append(publisher.publish(b"{}", step))

    test_infrastructure.rotate_credentials("rabbitmq", after_step=reconnect_and_publish)
    assert len(published) == 4
    publisher._close()
    publisher.publish(b"{}", "after")


def test_a_secret_is_read_without_loading_boto3_into_the_service(test_infrastructure, inventory_settings):
    """A service process reads its secret through a short-lived child (common.secret_fetch): it gets the login,
    and boto3/botocore (about 18 MiB per process) never enter the long-lived process."""
    environment = {**os.environ, **test_infrastructure.service_env("inventory"), "PYTHONPATH": ".:services"}
    probe = (
        "import sys; from common.config import DatabaseSettings; "
        "login = DatabaseSettings.from_env('movies_db').credentials.current(); "
        "print(login.user, 'boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == [inventory_settings.credentials.current().user, "False", "False"]
