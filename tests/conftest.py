"""Shared fixtures: the real servers of the ``test`` local-system profile, started only when needed.

* ``postgres``      -> PostgreSQL (movies_db, billing_db) on 127.0.0.1:26432       (marks the test integration)
* ``rabbitmq``      -> RabbitMQ on 127.0.0.1:26672                                 (marks the test integration)
* ``redis_store``   -> redis-server (the gateway's rate-limit counters) on 26379   (marks the test integration)
* ``local_system``  -> both, plus inventory/billing/gateway on 18080/18081/13000   (marks the test e2e)
* ``filter_emulator`` -> a moto server of the poster filters' tests on a free port (tests/functions) (integration)
* ``s3_emulator``     -> a moto server of the invoicer's and the claim check's tests on a free port (integration)

Nothing starts at import or collection time: a run that selects no such test (``pytest -m infra``,
``pytest tests/unit``) never starts a server. Whatever was started is stopped at the end of the session,
also when tests fail or the run is interrupted (Ctrl-C, SIGTERM). ``KEEP_TEST_SYSTEM=1`` keeps it running
for debugging (``python -m local_system --profile test status|logs|down``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

import pika
import psycopg2
import pytest
from psycopg2 import sql

from common.config import DatabaseSettings
from contract.services import BILLING
from local_system import DATABASES, SERVICES, LocalSystem
from tests.moto_process import free_port, moto_server

#: Fixtures that start servers, and the marker a test using them gets automatically.
SERVER_FIXTURES = {
    "postgres": "integration",
    "rabbitmq": "integration",
    "redis_store": "integration",
    "test_infrastructure": "integration",
    "full_test_system": "e2e",
    "local_system": "e2e",
    "gateway_url": "e2e",
    "inventory_url": "e2e",
    "billing_url": "e2e",
    "filter_emulator": "integration",
    "poster_pipeline": "integration",
    "s3_emulator": "integration",
}


# -- collection: markers and the infra guard ----------------------------------------------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use, and refuse infra tests that would start servers."""
    for item in items:
        used = [name for name in SERVER_FIXTURES if name in getattr(item, "fixturenames", ())]
        if used and item.get_closest_marker("infra"):
            raise pytest.UsageError(
                f"{item.nodeid} is marked 'infra' (no servers) but uses {', '.join(used)}; "
                "CDK tests must not start PostgreSQL, RabbitMQ or the services"
            )
        for name in used:
            item.add_marker(SERVER_FIXTURES[name])


def pytest_configure(config: pytest.Config) -> None:
    """Turn SIGTERM (CI cancelling the job) into KeyboardInterrupt so session teardown still stops servers."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


# -- helpers the fixtures hand out ---------------------------------------------------------------------------
class PostgresHelper:
    """Connections and clean-up for the test PostgreSQL server (the ``app`` role, over TCP)."""

    def __init__(self, system: LocalSystem):
        self.system = system

    def dsn(self, database: str) -> str:
        """libpq DSN for ``movies_db`` or ``billing_db`` (holds the password: never print it)."""
        return self.system.database_dsn(database)

    @contextlib.contextmanager
    def connect(self, database: str, autocommit: bool = True) -> Iterator[psycopg2.extensions.connection]:
        """A fresh connection, closed on exit."""
        connection = psycopg2.connect(self.dsn(database))
        connection.autocommit = autocommit
        try:
            yield connection
        finally:
            connection.close()

    def query(self, database: str, statement: str, params: tuple = ()) -> list[tuple]:
        """Run one statement and return its rows ([] when it returns none)."""
        with self.connect(database) as connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def truncate(self, database: str, *tables: str) -> None:
        """Empty the given tables (all tables of the public schema when none given) and reset their ids."""
        with self.connect(database) as connection, connection.cursor() as cursor:
            if not tables:
                cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                tables = tuple(row[0] for row in cursor.fetchall())
            if tables:
                names = sql.SQL(", ").join(sql.Identifier(table) for table in tables)
                cursor.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))

    def count_rows(self, database: str, table: str) -> int:
        """Number of rows in ``database.table``."""
        with self.connect(database) as connection, connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            return cursor.fetchone()[0]

    def count_orders(self) -> int:
        """Number of rows in billing_db.orders."""
        return self.count_rows(BILLING.database, "orders")


class RabbitMQHelper:
    """Connections and queue clean-up for the test RabbitMQ node (the generated ``app`` user)."""

    def __init__(self, system: LocalSystem):
        self.system = system

    @property
    def params(self) -> pika.ConnectionParameters:
        """pika connection parameters with the generated credentials."""
        settings = self.system.amqp_params()
        return pika.ConnectionParameters(
            host=settings["host"],
            port=settings["port"],
            virtual_host=settings["virtual_host"],
            credentials=pika.PlainCredentials(settings["username"], settings["password"]),
            connection_attempts=3,
            retry_delay=1,
            blocked_connection_timeout=10,
        )

    @contextlib.contextmanager
    def channel(self) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
        """A channel on a fresh connection, both closed on exit."""
        connection = pika.BlockingConnection(self.params)
        try:
            yield connection.channel()
        finally:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()

    def message_count(self, queue: str) -> int:
        """Ready messages in an existing queue (consumers' unacked messages are not counted)."""
        with self.channel() as channel:
            return channel.queue_declare(queue, passive=True).method.message_count

    def purge(self, *queues: str) -> None:
        """Drop the ready messages of the queues that exist (missing queues are ignored)."""
        for queue in queues:
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker), self.channel() as channel:
                channel.queue_purge(queue)

    def delete(self, *queues: str) -> None:
        """Delete the queues (missing queues are ignored)."""
        with self.channel() as channel:
            for queue in queues:
                channel.queue_delete(queue)


# -- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def test_system() -> Iterator[LocalSystem]:
    """The ``test`` profile's LocalSystem; everything it started is stopped when the session ends.

    Starts nothing by itself: the fixtures below start the parts they need. Holds the profile for the
    whole session: a second concurrent run (another terminal, another agent) waits instead of restarting
    this run's servers under it.
    """
    system = LocalSystem("test")
    with system.exclusive_use(waiting=lambda message: print(f"\n{message}", file=sys.stderr, flush=True)):
        try:
            yield system
        finally:
            if os.environ.get("KEEP_TEST_SYSTEM") != "1":
                system.down()


@pytest.fixture(scope="session")
def test_infrastructure(test_system: LocalSystem) -> LocalSystem:
    """PostgreSQL and RabbitMQ of the test profile, running (reused if a previous run left them up)."""
    test_system.start_infrastructure()
    return test_system


@pytest.fixture(scope="session")
def postgres(test_infrastructure: LocalSystem) -> PostgresHelper:
    """The test PostgreSQL server: ``.dsn(db)``, ``.connect(db)``, ``.truncate(db)``, ``.count_orders()``."""
    return PostgresHelper(test_infrastructure)


@pytest.fixture(scope="session")
def rabbitmq(test_infrastructure: LocalSystem) -> RabbitMQHelper:
    """The test RabbitMQ node: ``.params`` (pika), ``.channel()``, ``.purge(q)``, ``.delete(q)``."""
    return RabbitMQHelper(test_infrastructure)


@pytest.fixture(scope="session")
def redis_store(test_infrastructure: LocalSystem):
    """The test redis-server: ``.url``, ``.logins()``, ``.port`` (a test that stops it starts it again)."""
    test_infrastructure.redis.start()  # idempotent; a test that stopped it gets it back
    return test_infrastructure.redis


@pytest.fixture(scope="session")
def full_test_system(test_infrastructure: LocalSystem) -> LocalSystem:
    """Start the three services once per session (after stopping any left over from an interrupted run,
    so they run the code under test)."""
    for name in reversed(SERVICES):
        test_infrastructure.stop_service(name)
    test_infrastructure.up()
    return test_infrastructure


@pytest.fixture
def local_system(full_test_system: LocalSystem) -> LocalSystem:
    """The full test system: PostgreSQL, RabbitMQ, inventory, billing and gateway, all running.

    Tests may ``stop_service(name)``, ``start_service(name)`` and ``restart_rabbitmq()``. Whatever a
    failed test left stopped is started again before the next test (a cheap pid check otherwise).
    """
    parts = [full_test_system.postgres, full_test_system.rabbitmq, *full_test_system.services.values()]
    if any(part.pid() is None for part in parts):
        full_test_system.up()
    return full_test_system


@pytest.fixture
def inventory_settings(postgres: PostgresHelper, monkeypatch: pytest.MonkeyPatch) -> DatabaseSettings:
    """DatabaseSettings for movies_db exactly as the local system gives them to inventory (its database, broker
    and AWS variables set in this process's environment, for an app built in the test)."""
    for key, value in postgres.system.service_env("inventory").items():
        if key.startswith(("DATABASE_", "RABBITMQ_", "AWS_")):
            monkeypatch.setenv(key, value)
    return DatabaseSettings.from_env(default_name="movies_db")


@pytest.fixture
def gateway_url(local_system: LocalSystem) -> str:
    """Base URL of the gateway under test, e.g. http://127.0.0.1:13000."""
    return local_system.profile.url("gateway")


@pytest.fixture
def inventory_url(local_system: LocalSystem) -> str:
    """Base URL of inventory under test."""
    return local_system.profile.url("inventory")


@pytest.fixture
def billing_url(local_system: LocalSystem) -> str:
    """Base URL of billing's health/metrics endpoint under test."""
    return local_system.profile.url("billing")


@pytest.fixture
def count_orders(postgres: PostgresHelper) -> Callable[[], int]:
    """Function returning the number of rows in billing_db.orders."""
    return postgres.count_orders


@pytest.fixture
def clean_databases(postgres: PostgresHelper) -> PostgresHelper:
    """Empty every table of both databases before the test."""
    for database in DATABASES:
        postgres.truncate(database)
    return postgres


@pytest.fixture(scope="session")
def s3_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto_server of this session on a free port (S3 for the invoicer and the claim check); its URL."""
    log = tmp_path_factory.mktemp("s3-moto") / "moto.log"
    with moto_server(free_port(), log, {"AWS_DEFAULT_REGION": "eu-west-1"}) as url:
        yield url
