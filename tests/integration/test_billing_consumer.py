"""The billing consumer against the real test PostgreSQL and RabbitMQ (no mocks).

Each test gets a queue of its own (``billing_it_<random>`` and its ``.dlq``, quorum queues declared with the
contract's arguments), so it never competes with the billing service of the e2e system for messages, and finds
its rows by the message-id prefix it used. Tests of the migration from the classic queue give the consumer a
legacy queue of their own too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pika
import pytest

from billing import BILLING, create_app
from billing.consumer import OrderConsumer
from billing.deadletters import list_dead_letters, replay_dead_letters
from billing.settings import ConsumerSettings
from billing.store import OrderStore
from common.config import DatabaseSettings, RabbitSettings
from common.db import ConnectionPool
from contract.messaging import BILLING_QUEUE
from tests.moto_process import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
GUNICORN = Path(sys.executable).with_name("gunicorn")
VALID = {"user_id": "3", "number_of_items": "5", "total_amount": "180"}


# -- helpers ------------------------------------------------------------------------------------------------
class Queue:
    """The test's own billing queue: publish to it, count it, read its dead letters and its stored rows."""

    def __init__(self, name: str, rabbitmq, postgres):
        self.name = name
        self.dlq = f"{name}.dlq"
        self.contract = replace(BILLING_QUEUE, name=name)
        self._rabbitmq = rabbitmq
        self._postgres = postgres

    def publish(
        self,
        bodies: Sequence[bytes | dict],
        *,
        ids: Sequence[str | None] | None = None,
        headers: dict | None = None,
        confirm: bool = True,
    ) -> list[str | None]:
        """Publish persistent messages, as the gateway does; return their message ids.

        With ``confirm`` each publish waits for the broker's confirm (as the gateway's do). Without it, large
        backlogs are published ten times faster and the call returns once they are all in the queue.
        """
        ids = list(ids) if ids is not None else [f"{self.name}-{uuid.uuid4().hex}" for _ in bodies]
        connection = pika.BlockingConnection(self._rabbitmq.params)
        try:
            channel = connection.channel()
            # Exactly as the gateway and billing declare them (any other arguments: PRECONDITION_FAILED).
            channel.queue_declare(self.dlq, durable=True, arguments=self.contract.dead_letter_arguments())
            channel.queue_declare(self.name, durable=True, arguments=self.contract.arguments())
            already = channel.queue_declare(self.name, passive=True).method.message_count
            if confirm:
                channel.confirm_delivery()
            for index, (body, message_id) in enumerate(zip(bodies, ids, strict=True)):
                raw = json.dumps(body).encode() if isinstance(body, dict) else body
                properties = pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=message_id,
                    headers={"x-request-id": f"req-{index}", **(headers or {})},
                )
                channel.basic_publish("", self.name, raw, properties, mandatory=True)
            if not confirm:
                wait_until(
                    lambda: channel.queue_declare(self.name, passive=True).method.message_count >= already + len(ids),
                    30,
                    "the published messages to be queued",
                )
        finally:
            connection.close()
        return ids

    def ready(self) -> int:
        """Messages waiting in the queue (unacknowledged deliveries are not counted)."""
        return self._rabbitmq.message_count(self.name)

    def dead_letter_count(self) -> int:
        """Messages waiting in the dead-letter queue."""
        return self._rabbitmq.message_count(self.dlq)

    def dead_letters(self) -> list[tuple[pika.BasicProperties, bytes]]:
        """Take every message out of the dead-letter queue."""
        letters = []
        with self._rabbitmq.channel() as channel:
            while True:
                method, properties, body = channel.basic_get(self.dlq, auto_ack=True)
                if method is None:
                    return letters
                letters.append((properties, body))

    def rows(self) -> list[tuple]:
        """(user_id, number_of_items, total_amount, message_id, request_id) of this test's orders."""
        return self._postgres.query(
            "billing_db",
            "SELECT user_id, number_of_items, total_amount, message_id, request_id FROM orders"
            " WHERE message_id LIKE %s OR request_id LIKE %s ORDER BY id",
            (f"{self.name}-%", f"{self.name}-%"),
        )

    def row_count(self) -> int:
        """Number of rows stored from this test's messages (a message stored twice would count twice)."""
        return self._postgres.query(
            "billing_db", "SELECT count(*) FROM orders WHERE message_id LIKE %s", (f"{self.name}-%",)
        )[0][0]


@pytest.fixture
def billing_env(test_infrastructure, monkeypatch) -> Iterator[str]:
    """The billing service's environment from the test profile, with a queue of this test's own.

    Reconnects are fast (100 ms doubling to 1 s) so outage tests stay short. Yields the queue name.
    """
    queue = f"billing_it_{uuid.uuid4().hex[:10]}"
    for key, value in test_infrastructure.service_env("billing").items():
        if key.startswith(("DATABASE_", "RABBITMQ_", "AWS_")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("BILLING_QUEUE", queue)
    # The express queue too: a consumer of the shared billing.orders.express would take the e2e system's orders.
    monkeypatch.setenv("BILLING_EXPRESS_QUEUE", f"{queue}.express")
    monkeypatch.setenv("BILLING_RECONNECT_INITIAL_MS", "100")
    monkeypatch.setenv("BILLING_RECONNECT_MAX_SECONDS", "1")
    yield queue


@pytest.fixture
def queue(billing_env, rabbitmq, postgres) -> Iterator[Queue]:
    """The test's queue; it and its dead-letter queue (and its express queue's) are deleted afterwards."""
    yield Queue(billing_env, rabbitmq, postgres)
    rabbitmq.delete(billing_env, f"{billing_env}.dlq", f"{billing_env}.express", f"{billing_env}.express.dlq")


@pytest.fixture
def start_consumer(billing_env) -> Iterator[Callable[..., OrderConsumer]]:
    """Start an OrderConsumer on the test's queue (ConsumerSettings fields as overrides); stopped afterwards."""
    started: list[tuple[OrderConsumer, OrderStore]] = []

    def start(wait: bool = True, rabbit: RabbitSettings | None = None, **overrides: object) -> OrderConsumer:
        store = OrderStore(ConnectionPool(DatabaseSettings.from_env("billing_db"), "billing-tests"))
        settings = replace(ConsumerSettings.from_env(), **overrides)
        consumer = OrderConsumer(store, rabbit or RabbitSettings.from_env(), settings)
        consumer.start()
        started.append((consumer, store))
        if wait:
            wait_until(lambda: consumer.is_consuming, 20, "the consumer to attach to its queue")
        return consumer

    yield start
    for consumer, store in started:
        consumer.stop(timeout=20)
        store.close()


# -- storing ------------------------------------------------------------------------------------------------
def test_each_order_is_stored_once_with_exact_values_and_ids(queue, start_consumer):
    """Strings and numbers both land as exact values, with the message id and request id of their message."""
    start_consumer()
    ids = queue.publish([VALID, {"user_id": 7, "number_of_items": 2, "total_amount": 19.99}])
    wait_until(lambda: queue.row_count() == 2, 10, "two rows")
    assert queue.rows() == [
        ("3", 5, Decimal("180.00"), ids[0], "req-0"),
        ("7", 2, Decimal("19.99"), ids[1], "req-1"),
    ]


def test_redelivered_message_id_creates_no_second_row(queue, start_consumer):
    """The same message id delivered twice (a redelivery, or a publisher retry) is stored once and acked."""
    consumer = start_consumer()
    message_id = f"{queue.name}-same"
    queue.publish([VALID, VALID], ids=[message_id, message_id])
    wait_until(lambda: queue.row_count() == 1, 10, "the row")
    queue.publish([VALID], ids=[message_id])
    time.sleep(0.5)  # longer than a batch wait: the third copy has been handled by now
    consumer.stop()
    assert (queue.row_count(), queue.ready(), queue.dead_letters()) == (1, 0, [])


def test_message_without_id_is_still_stored(queue, start_consumer):
    """A publisher that sets no message_id still gets its order stored (at-least-once, logged as a warning)."""
    start_consumer()
    queue.publish([{**VALID, "user_id": "no-id"}], ids=[None], headers={"x-request-id": f"{queue.name}-r"})
    wait_until(lambda: len(queue.rows()) == 1, 10, "the row")
    assert queue.rows() == [("no-id", 5, Decimal("180.00"), None, f"{queue.name}-r")]


def test_backlog_waiting_before_start_is_drained(queue, start_consumer):
    """Orders queued while billing was down all land once it starts (10,000 in a few seconds)."""
    total = 10_000
    queue.publish([VALID] * total, confirm=False)
    began = time.monotonic()
    start_consumer(wait=False)
    wait_until(lambda: queue.row_count() == total, 30, f"{total} rows")
    elapsed = time.monotonic() - began
    print(f"\n{total} queued orders stored in {elapsed:.2f} s ({total / elapsed:,.0f} rows/s)")
    assert queue.ready() == 0


# -- poison messages ----------------------------------------------------------------------------------------
def test_poison_message_is_dead_lettered_with_reason_and_not_stored(queue, start_consumer):
    """A message that can never be an order goes to <queue>.dlq with its body, headers and the reason."""
    consumer = start_consumer()
    [message_id] = queue.publish([{**VALID, "total_amount": "-1"}], headers={"x-principal-sub": "alice"})
    wait_until(lambda: queue.ready() == 0 and queue.dead_letter_count() == 1, 10, "a dead letter")
    consumer.stop()
    [(properties, body)] = queue.dead_letters()
    assert json.loads(body) == {**VALID, "total_amount": "-1"}
    assert properties.message_id == message_id
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    headers = properties.headers
    assert headers["x-dead-letter-kind"] == "invalid_value"
    assert "total_amount must not be negative" in headers["x-dead-letter-reason"]
    assert headers["x-original-message-id"] == message_id
    assert headers["x-original-queue"] == queue.name
    assert headers["x-request-id"] == "req-0"
    assert headers["x-principal-sub"] == "alice"
    assert headers["x-dead-lettered-at"]
    assert (queue.row_count(), queue.ready()) == (0, 0)


def test_poison_message_does_not_hold_back_its_batch(queue, start_consumer):
    """Valid orders around a bad one are stored; only the bad one is dead-lettered."""
    start_consumer()
    queue.publish([VALID, b"{not json", VALID])
    wait_until(lambda: queue.row_count() == 2, 10, "the two valid rows")
    wait_until(lambda: queue.dead_letter_count() == 1, 10, "the dead letter")
    [(properties, _)] = queue.dead_letters()
    assert properties.headers["x-dead-letter-kind"] == "invalid_json"


def test_row_refused_by_the_database_is_dead_lettered_alone(queue, start_consumer, postgres):
    """If PostgreSQL refuses one row of a batch, the others are stored and that one is dead-lettered."""
    start_consumer()
    constraint = f"{queue.name}_refuse"
    refused_user = f"refuse-{queue.name}"
    # A rule only the database knows (NOT VALID: existing rows are not checked), as a future schema change could add.
    postgres.query(
        "billing_db",
        f"ALTER TABLE orders ADD CONSTRAINT {constraint} CHECK (user_id <> '{refused_user}') NOT VALID",
    )
    try:
        queue.publish([VALID, {**VALID, "user_id": refused_user}, VALID])
        wait_until(lambda: queue.dead_letter_count() == 1, 10, "the dead letter")
        wait_until(lambda: queue.row_count() == 2, 10, "the two other rows")
    finally:
        postgres.query("billing_db", f"ALTER TABLE orders DROP CONSTRAINT {constraint}")
    [(properties, body)] = queue.dead_letters()
    assert json.loads(body)["user_id"] == refused_user
    assert properties.headers["x-dead-letter-kind"] == "rejected_by_database"
    assert constraint in properties.headers["x-dead-letter-reason"]


def test_schema_problem_is_retried_not_dead_lettered(queue, start_consumer, postgres):
    """An error that is not about one message (here: the table is missing) dead-letters nothing: the consumer
    reports not-ready, keeps the messages queued, and stores them once the table is back."""
    consumer = start_consumer()
    postgres.query("billing_db", "ALTER TABLE orders RENAME TO orders_moved_away")
    try:
        queue.publish([VALID] * 3)
        wait_until(lambda: not consumer.is_consuming, 10, "the consumer to give up its subscription")
        time.sleep(0.5)
        assert queue.dead_letter_count() == 0
    finally:
        postgres.query("billing_db", "ALTER TABLE orders_moved_away RENAME TO orders")
    wait_until(lambda: queue.row_count() == 3, 20, "the three rows")


# -- outages ------------------------------------------------------------------------------------------------
def publish_in_background(queue: Queue, total: int, per_second: int) -> threading.Thread:
    """Publish ``total`` orders at about ``per_second`` from a thread (a gateway under steady load)."""

    def run() -> None:
        chunk = max(1, per_second // 10)
        for _ in range(0, total, chunk):
            queue.publish([VALID] * chunk)
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_database_outage_mid_stream_loses_nothing(queue, start_consumer, test_infrastructure):
    """PostgreSQL stops while orders flow: the consumer stops acking, backs off, and once the database is back
    every order is stored exactly once."""
    consumer = start_consumer()
    total = 3000
    publisher = publish_in_background(queue, total, per_second=1000)
    wait_until(lambda: queue.row_count() > 0, 10, "the first rows")
    test_infrastructure.stop_service("postgres")
    try:
        wait_until(lambda: not consumer.is_consuming, 10, "the consumer to notice the outage")
        time.sleep(1)
    finally:
        test_infrastructure.start_service("postgres")
    publisher.join(30)
    wait_until(lambda: queue.row_count() == total, 30, f"all {total} rows")
    consumer.stop()
    assert queue.ready() == 0
    assert len({row[3] for row in queue.rows()}) == total


def test_broker_restart_consumer_reconnects_and_continues(queue, start_consumer, test_infrastructure):
    """RabbitMQ restarts: the consumer reconnects by itself and stores what was queued before and after."""
    consumer = start_consumer()
    queue.publish([VALID] * 100)
    wait_until(lambda: queue.row_count() == 100, 10, "the first 100 rows")
    test_infrastructure.restart_rabbitmq()
    wait_until(lambda: consumer.is_consuming, 30, "the consumer to reconnect")
    queue.publish([VALID] * 100)
    wait_until(lambda: queue.row_count() == 200, 10, "200 rows")


def test_deleted_queue_is_declared_again_and_consumed(queue, start_consumer, rabbitmq):
    """If an operator deletes the queue, the broker cancels the consumer; it reconnects, declares the queue
    again and keeps consuming instead of idling while looking healthy."""
    start_consumer()
    rabbitmq.delete(queue.name)

    def consumers() -> int:
        with rabbitmq.channel() as channel:
            try:
                return channel.queue_declare(queue.name, passive=True).method.consumer_count
            except pika.exceptions.ChannelClosedByBroker:  # not declared again yet
                return 0

    wait_until(lambda: consumers() == 1, 15, "the consumer to declare the queue again and attach to it")
    queue.publish([VALID])
    wait_until(lambda: queue.row_count() == 1, 10, "the row")


# -- shutdown -----------------------------------------------------------------------------------------------
def test_stop_finishes_the_in_flight_batch(queue, start_consumer):
    """stop() mid-stream commits and acks what was received: rows + still-queued == published, no duplicates."""
    total = 20_000
    queue.publish([VALID] * total, confirm=False)
    consumer = start_consumer(wait=False, batch_size=100, prefetch=200)
    wait_until(lambda: queue.row_count() >= 500, 20, "the first rows")
    assert consumer.stop(timeout=10)
    stored = queue.row_count()
    assert 0 < stored < total
    assert stored + queue.ready() == total


def test_gunicorn_sigterm_finishes_the_in_flight_batch(queue, billing_env, tmp_path):
    """The real service under gunicorn: SIGTERM stops consuming, commits and acks the in-flight batch, exits 0,
    and every order is either stored or still queued (none lost, none stored twice)."""
    total = 20_000
    queue.publish([VALID] * total, confirm=False)
    log_file = tmp_path / "billing.log"
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "BIND_HOST": "127.0.0.1",
        "GUNICORN_WORKERS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        # The services and the contract package (the repository root), as the local system and the image have.
        "PYTHONPATH": os.pathsep.join((str(SERVICES_DIR), str(SERVICES_DIR.parent))),
        "BILLING_BATCH_SIZE": "100",
        "BILLING_PREFETCH": "200",
    }
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(GUNICORN), "--config", "python:common.gunicorn_config", "billing:create_app()"],
            cwd=SERVICES_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: queue.row_count() >= 1000, 30, "the service to store its first rows")
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_file.read_text()
    assert exit_code == 0, output[-3000:]
    assert "billing consumer stopped" in output
    stored = queue.row_count()
    assert stored < total, "SIGTERM arrived after everything was stored; publish more to test shutdown"
    assert stored + queue.ready() == total


# -- HTTP -----------------------------------------------------------------------------------------------------
def test_ready_once_the_consumer_is_attached(billing_env, queue):
    """/ready answers 200 naming every check when the database answers and both the order consumer and the
    saga consumer are attached; 503 naming ``saga`` while only the order consumer is."""
    app = create_app()
    parts = BILLING.of(app)
    parts.consumer.start()  # create_app starts nothing: gunicorn's post_worker_init does, under the real server
    try:
        wait_until(lambda: parts.consumer.is_consuming, 20, "the consumer to attach")
        response = app.test_client().get("/ready")
        assert (response.status_code, list(response.get_json()["failing"])) == (503, ["saga"])
        parts.saga.start()
        wait_until(lambda: parts.saga.consumer.is_consuming, 20, "the saga consumer to attach")
        response = app.test_client().get("/ready")
        assert (response.status_code, response.get_json()["checks"]) == (200, ["broker", "database", "saga"])
    finally:
        parts.saga.stop()
        parts.consumer.stop()


def test_factory_starts_no_consumer(billing_env):
    """create_app only builds: the consumer thread starts from gunicorn's post_worker_init (or start())."""
    before = {thread.name for thread in threading.enumerate()}
    app = create_app()
    consumer = BILLING.of(app).consumer
    assert not consumer.is_consuming
    assert "billing-consumer" not in {thread.name for thread in threading.enumerate()} - before
    consumer.stop()


def test_not_ready_while_the_broker_is_unreachable(billing_env, monkeypatch):
    """With no broker, /health still answers 200 (no restart loop) while /ready answers 503 naming the broker."""
    monkeypatch.setenv("RABBITMQ_URL", f"amqp://127.0.0.1:{free_port()}/")
    app = create_app()
    consumer = BILLING.of(app).consumer
    consumer.start()
    try:
        client = app.test_client()
        assert client.get("/health").status_code == 200
        response = client.get("/ready")
        assert response.status_code == 503
        # The saga consumer (not started here, and it needs the same broker) is not attached either.
        assert list(response.get_json()["failing"]) == ["broker", "saga"]
    finally:
        consumer.stop()


# -- dead-letter tooling --------------------------------------------------------------------------------------
def test_replayed_dead_letter_is_stored_once(queue, start_consumer, postgres):
    """After the cause is fixed, ``billing.deadletters replay`` moves a dead letter back and it is stored once,
    under its original message id."""
    start_consumer()
    constraint = f"{queue.name}_refuse"
    postgres.query("billing_db", f"ALTER TABLE orders ADD CONSTRAINT {constraint} CHECK (user_id <> 'later') NOT VALID")
    try:
        [message_id] = queue.publish([{**VALID, "user_id": "later"}])
        wait_until(lambda: queue.dead_letter_count() == 1, 10, "the dead letter")
    finally:
        postgres.query("billing_db", f"ALTER TABLE orders DROP CONSTRAINT {constraint}")
    [letter] = list_dead_letters(RabbitSettings.from_env(), limit=10)
    assert (letter["message_id"], letter["kind"]) == (message_id, "rejected_by_database")

    assert replay_dead_letters(RabbitSettings.from_env(), limit=10) == 1
    wait_until(lambda: queue.row_count() == 1, 10, "the replayed row")
    assert queue.rows()[0][0] == "later" and queue.rows()[0][3] == message_id
    assert queue.dead_letter_count() == 0
