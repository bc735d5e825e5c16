"""The test harness itself: the private PostgreSQL and RabbitMQ of the ``test`` profile behave as promised."""

import stat
import uuid

import pika
import psycopg2
import pytest

from local_system import DATABASES


@pytest.mark.parametrize("database", DATABASES)
def test_postgres_answers_over_tcp_with_generated_password(postgres, database):
    """Both databases answer SELECT 1 over TCP on 127.0.0.1 as their owning service's role (its generated
    password), and that role owns the database."""
    owner = {"movies_db": "inventory", "billing_db": "billing"}[database]
    query = "SELECT 1, current_user, inet_server_addr()::text, pg_get_userbyid(datdba) FROM pg_database"
    rows = postgres.query(database, f"{query} WHERE datname = current_database()")
    assert rows == [(1, owner, "127.0.0.1/32", owner)]


def test_each_service_role_reaches_its_own_database_only(postgres):
    """inventory's login is refused on billing_db: rotating one service's password concerns that service only."""
    dsn = postgres.dsn("movies_db").replace("dbname=movies_db", "dbname=billing_db")
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        psycopg2.connect(dsn).close()


def test_postgres_refuses_wrong_password(postgres):
    """TCP logins are checked (scram-sha-256): a wrong password is refused."""
    dsn = postgres.dsn("movies_db").replace("password=", "password=wrong")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(dsn).close()


def test_credentials_file_is_private(test_infrastructure):
    """The generated passwords are readable by their owner only (mode 0600)."""
    mode = (test_infrastructure.state_dir / "credentials.env").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_rabbitmq_round_trip_with_generated_user(rabbitmq):
    """A message published with the generated user comes back from a consume."""
    queue = f"harness-{uuid.uuid4().hex}"
    body = uuid.uuid4().bytes
    with rabbitmq.channel() as channel:
        channel.queue_declare(queue, exclusive=True)
        channel.confirm_delivery()
        channel.basic_publish("", queue, body)
        method, _properties, received = next(channel.consume(queue, inactivity_timeout=5))
        assert method is not None, "no message within 5 s"
        channel.basic_ack(method.delivery_tag)
        channel.cancel()
    assert received == body


def test_rabbitmq_rejects_guest(rabbitmq):
    """The default ``guest`` user does not exist on the private node."""
    params = rabbitmq.params
    params.credentials = pika.PlainCredentials("guest", "guest")
    params.connection_attempts = 1
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(params).close()


def test_restart_rabbitmq_keeps_durable_queues_and_persistent_messages(test_infrastructure, rabbitmq):
    """After ``restart_rabbitmq()`` the broker accepts connections again and a durable queue still holds
    its persistent message."""
    queue = f"harness-durable-{uuid.uuid4().hex}"
    with rabbitmq.channel() as channel:
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        channel.basic_publish("", queue, b"survives", pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
    try:
        test_infrastructure.restart_rabbitmq()
        assert rabbitmq.message_count(queue) == 1
    finally:
        rabbitmq.delete(queue)
