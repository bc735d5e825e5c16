"""Fixtures for end-to-end tests: the full local system (test profile) and clients for it."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e


@pytest.fixture
def urls(local_system) -> dict[str, str]:
    """Base URLs of the three services of the running test system."""
    return local_system.urls()


@pytest.fixture
def gateway(gateway_url) -> str:
    """Base URL of the gateway."""
    return gateway_url


@pytest.fixture
def http():
    """A keep-alive HTTP session whose requests time out, so a hung service fails a test instead of the run."""
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
    with postgres.connect("billing_db") as conn:
        yield conn


@pytest.fixture
def amqp(rabbitmq, local_system):
    """A channel on the test broker, for publishing poison messages and reading the dead-letter queue."""
    with rabbitmq.channel() as channel:
        yield channel


def rows_for(conn, marker: str) -> list[tuple]:
    """Orders whose user_id is ``marker`` (each test uses its own marker so tests do not see each other)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, number_of_items, total_amount, message_id, request_id FROM orders WHERE user_id = %s",
            (marker,),
        )
        return cur.fetchall()


def wait_for_rows(conn, marker: str, count: int, timeout: float = 20.0) -> list[tuple]:
    """Poll until ``count`` rows for ``marker`` exist (or the timeout passes); return what is there."""
    deadline = time.monotonic() + timeout
    rows = rows_for(conn, marker)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = rows_for(conn, marker)
    return rows


def new_marker() -> str:
    """A user id unique to one test."""
    return f"e2e-{uuid.uuid4().hex[:12]}"


def order(marker: str, items: int = 1, amount: str = "10") -> str:
    """An order body for ``marker``."""
    return json.dumps({"user_id": marker, "number_of_items": str(items), "total_amount": amount})
