"""Fixtures for end-to-end tests: the full local system (test profile) and clients for it."""

from __future__ import annotations

import contextlib

import pytest
import requests

from contract.services import BILLING

pytestmark = pytest.mark.e2e


@pytest.fixture
def urls(local_system) -> dict[str, str]:
    """Base URLs of the three services of the running test system."""
    return local_system.urls()


@pytest.fixture
def gateway(gateway_url) -> str:
    """Base URL of the gateway."""
    return gateway_url


@pytest.fixture(scope="session")
def access_token(full_test_system) -> str:
    """A real access token of the demo user (all permissions), issued by the local Cognito emulator."""
    return full_test_system.token()


@pytest.fixture
def anonymous_http():
    """A keep-alive HTTP session without credentials; requests time out, so a hung service fails a test
    instead of the run."""
    with _session() as session:
        yield session


@pytest.fixture
def http(access_token):
    """Like ``anonymous_http``, authenticated as the demo user (the e2e tests run with auth on)."""
    with _session() as session:
        session.headers["Authorization"] = f"Bearer {access_token}"
        yield session


@contextlib.contextmanager
def _session():
    with requests.Session() as session:
        plain_request = session.request

        def request_with_timeout(method, url, **kwargs):
            kwargs.setdefault("timeout", 10)
            return plain_request(method, url, **kwargs)

        session.request = request_with_timeout
        yield session


@pytest.fixture
def billing_db(postgres, local_system):
    """An autocommit connection to billing_db, for checking what landed."""
    with postgres.connect(BILLING.database) as conn:
        yield conn


@pytest.fixture
def amqp(rabbitmq, local_system):
    """A channel on the test broker, for publishing poison messages and reading the dead-letter queue."""
    with rabbitmq.channel() as channel:
        yield channel
