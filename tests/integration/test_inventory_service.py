"""inventory in-process (Flask test client) against the real test PostgreSQL: the parts a client cannot see
through the API alone — migrations, the pool after a database restart, behaviour while the database is down."""

from __future__ import annotations

import threading
import time

import pytest

from common.db import ConnectionPool, Schema
from inventory import create_app
from inventory.db import MIGRATIONS

pytestmark = pytest.mark.integration



@pytest.fixture
def client(inventory_settings, postgres):
    """A test client of a fresh inventory app on an empty movies table."""
    app = create_app(inventory_settings)
    postgres.truncate("movies_db", "movies")
    return app.test_client()


def test_migrations_run_once_when_workers_start_together(inventory_settings, postgres):
    """Eight workers migrating at the same moment apply each migration exactly once, without errors."""
    errors: list[BaseException] = []

    def migrate():
        pool = ConnectionPool(inventory_settings, "migration-test")
        try:
            Schema(pool, "inventory", MIGRATIONS).ensure()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            pool.close()

    threads = [threading.Thread(target=migrate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    versions = postgres.query(
        "movies_db", "SELECT version FROM schema_migrations WHERE service = 'inventory' ORDER BY version"
    )
    assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))


def test_concurrent_creates_get_distinct_ids(client):
    """Parallel POSTs through one app (one pool) all succeed with distinct ids."""
    ids: list[int] = []
    lock = threading.Lock()

    def create(n: int):
        response = client.post("/api/movies", json={"title": f"parallel {n}"})
        assert response.status_code == 201
        with lock:
            ids.append(response.get_json()["id"])

    threads = [threading.Thread(target=create, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(ids)) == 20


def test_reads_survive_the_database_closing_every_connection(client, postgres):
    """After PostgreSQL drops all connections (restart, failover), the next read still answers 200."""
    movie = client.post("/api/movies", json={"title": "Survivor"}).get_json()
    client.get(f"/api/movies/{movie['id']}")  # leave a pooled connection idle
    postgres.query(
        "movies_db",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = 'movies_db' AND application_name = 'inventory'",
    )
    response = client.get(f"/api/movies/{movie['id']}")
    assert response.status_code == 200
    assert response.get_json() == movie
    assert client.post("/api/movies", json={"title": "after"}).status_code == 201


def test_a_write_after_the_database_closed_idle_connections_is_not_a_503(client, postgres):
    """PostgreSQL closed the pooled connections while they sat idle (an administrator, a failover): the next
    POST, which cannot be retried blindly, is served on a live connection (201), not answered 503."""
    client.get("/api/movies")  # leave a pooled connection idle
    backends = (
        "SELECT pid FROM pg_stat_activity WHERE datname = 'movies_db' AND application_name = 'inventory'"
    )
    assert postgres.query("movies_db", backends)
    postgres.query(
        "movies_db",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = 'movies_db' AND application_name = 'inventory'",
    )
    deadline = time.monotonic() + 5
    while postgres.query("movies_db", backends) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.post("/api/movies", json={"title": "written after the drop"}).status_code == 201


def test_database_down_gives_503_json_and_not_ready(client, postgres):
    """PostgreSQL stopped: API calls answer 503 with a JSON error, /ready 503 naming the database, /health 200;
    once it is back, everything answers again."""
    system = postgres.system
    system.stop_service("postgres")
    try:
        response = client.get("/api/movies")
        assert response.status_code == 503
        assert "database" in response.get_json()["error"]
        assert response.headers["Retry-After"]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "database" in ready.get_json()["failing"]
        assert ready.get_json()["dependencies"]["database"]["ok"] is False
        assert client.get("/health").status_code == 200
    finally:
        system.start_service("postgres")
    assert client.get("/api/movies").status_code == 200
    back = client.get("/ready")
    assert back.status_code == 200
    database = back.get_json()["dependencies"]["database"]
    assert database["ok"] is True and isinstance(database["latency_ms"], float) and database["latency_ms"] >= 0
