"""The saga consumer helper against the real test PostgreSQL and RabbitMQ: applied once, acked after the commit,
malformed or refused events dead-lettered with their reason. Exchange, queue and tables are the test's own."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pika
import pytest

from common import claim_check
from common.amqp import declare_saga
from common.config import DatabaseSettings, RabbitSettings
from common.db import ConnectionPool, DatabaseUnavailable
from common.inbox import InboxTable
from common.saga_consumer import SagaConsumer
from contract import saga
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


class Setup:
    """The test's exchange, queue, inbox and ``applied`` table, and a consumer whose handler writes a row."""

    def __init__(self, rabbitmq, postgres):
        suffix = uuid.uuid4().hex[:10]
        self.exchange = f"saga_it_{suffix}"
        self.queue = replace(saga.INVENTORY_EVENTS, name=f"saga_it_{suffix}.inventory")
        self.inbox = InboxTable(f"inbox_it_{suffix}")
        self.applied = f"applied_it_{suffix}"
        self.rabbitmq, self.postgres = rabbitmq, postgres
        postgres.query("billing_db", self.inbox.migration())
        postgres.query("billing_db", f"CREATE TABLE {self.applied} (event_id text, order_id text)")
        self.pool = ConnectionPool(DatabaseSettings.from_env("billing_db"), "saga-consumer-tests")
        self.consumer: SagaConsumer | None = None

    def start(self, wait: bool = True, **options) -> SagaConsumer:
        """Start the consumer (``options`` go to SagaConsumer); the handler records each event it applies, and
        refuses order ids "refuse-*"."""

        def handler(cursor, event: saga.Event) -> None:
            cursor.execute(f"INSERT INTO {self.applied} VALUES (%s, %s)", (event.event_id, event.order_id))  # noqa: S608
            if event.order_id.startswith("refuse"):
                raise ValueError(f"movie {event.data['movie_id']} is not for sale")

        self.consumer = SagaConsumer(
            self.pool, RabbitSettings.from_env(), self.queue, handler, exchange=self.exchange, inbox=self.inbox,
            **options,
        )
        self.consumer.start()
        if wait:
            wait_until(lambda: self.consumer.is_consuming, 20, "the consumer to attach")
        return self.consumer

    def publish(self, body: bytes, routing_key: str, message_id: str | None) -> None:
        """Publish to the test's exchange, persistent, with a confirm."""
        with self.rabbitmq.channel() as channel:
            channel.confirm_delivery()
            properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id)
            channel.basic_publish(self.exchange, routing_key, body, properties, mandatory=True)

    def rows(self) -> list[tuple]:
        return self.postgres.query("billing_db", f"SELECT event_id, order_id FROM {self.applied}")  # noqa: S608

    def dead_letters(self) -> list[tuple[pika.BasicProperties, bytes]]:
        letters = []
        with self.rabbitmq.channel() as channel:
            while True:
                method, properties, body = channel.basic_get(self.queue.dead_letter_queue, auto_ack=True)
                if method is None:
                    return letters
                letters.append((properties, body))

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(timeout=20)
        self.pool.close()
        self.postgres.query("billing_db", f"DROP TABLE IF EXISTS {self.applied}, {self.inbox.name}")
        self.rabbitmq.delete(self.queue.name, self.queue.dead_letter_queue)
        with self.rabbitmq.channel() as channel:
            channel.exchange_delete(self.exchange)


@pytest.fixture
def setup(test_infrastructure, rabbitmq, postgres, monkeypatch) -> Iterator[Setup]:
    """The test's own saga queue, tables and consumer, with the test profile's broker and database settings."""
    for key, value in test_infrastructure.service_env("billing").items():
        if key.startswith(("DATABASE_", "RABBITMQ_", "AWS_")):
            monkeypatch.setenv(key, value)
    made = Setup(rabbitmq, postgres)
    yield made
    made.close()


def placed(order_id: str) -> saga.Event:
    """A valid order.placed event."""
    data = {"movie_id": 7, "quantity": 1, "total_amount": "9.99", "principal": {"sub": "alice", "name": None}}
    return saga.new_event(saga.ORDER_PLACED, order_id, data)


def test_a_replayed_event_is_applied_once_and_both_copies_acked(setup):
    """The same event delivered twice changes state once; nothing is left in the queue or dead-lettered."""
    setup.start()
    event = placed("o-1")
    for _ in range(2):
        setup.publish(event.body(), event.routing_key, event.event_id)
    later = placed("o-2")  # published after both copies: once it is applied, both copies were handled
    setup.publish(later.body(), later.routing_key, later.event_id)
    wait_until(lambda: any(order == "o-2" for _, order in setup.rows()), 20, "the later event")
    assert sorted(setup.rows()) == sorted([(event.event_id, "o-1"), (later.event_id, "o-2")])
    wait_until(lambda: setup.rabbitmq.message_count(setup.queue.name) == 0, 10, "the queue to be empty")
    assert setup.dead_letters() == []


def test_a_malformed_message_is_dead_lettered_with_its_reason(setup):
    """A body that is no saga event goes to the queue's dead-letter queue with kind and reason; nothing applied."""
    setup.start()
    setup.publish(b'{"type": "order.placed"}', saga.ORDER_PLACED, "bad-1")
    wait_until(lambda: setup.rabbitmq.message_count(setup.queue.dead_letter_queue) == 1, 20, "the dead letter")
    [(properties, body)] = setup.dead_letters()
    assert body == b'{"type": "order.placed"}'
    assert properties.headers["x-dead-letter-kind"] == "missing_field"
    assert "event_id" in properties.headers["x-dead-letter-reason"]
    assert properties.headers["x-original-queue"] == setup.queue.name
    assert properties.headers["x-original-message-id"] == "bad-1"
    assert setup.rows() == []


def test_an_event_the_handler_refuses_is_dead_lettered_and_rolled_back(setup):
    """A handler that raises rolls its transaction back (no row, no inbox record) and the event is dead-lettered
    with the handler's reason, not requeued."""
    setup.start()
    event = placed("refuse-1")
    setup.publish(event.body(), event.routing_key, event.event_id)
    wait_until(lambda: setup.rabbitmq.message_count(setup.queue.dead_letter_queue) == 1, 20, "the dead letter")
    [(properties, _)] = setup.dead_letters()
    assert properties.headers["x-dead-letter-kind"] == "handler_failed"
    assert "movie 7 is not for sale" in properties.headers["x-dead-letter-reason"]
    assert setup.rows() == []
    assert setup.postgres.query("billing_db", f"SELECT count(*) FROM {setup.inbox.name}") == [(0,)]  # noqa: S608
    assert setup.rabbitmq.message_count(setup.queue.name) == 0


# -- the claim check ----------------------------------------------------------------------------------------------
@pytest.fixture
def claims(s3_emulator: str) -> tuple[claim_check.Store, claim_check.Fetch, object]:
    """A fresh claim-check bucket in the test's moto server: its store, fetch and a client to tamper with it."""
    client = boto3.client("s3", endpoint_url=s3_emulator, region_name="eu-west-1")
    bucket = f"claims-it-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    store = claim_check.s3_store(bucket, endpoint_url=s3_emulator, region="eu-west-1")
    return store, claim_check.s3_fetch(endpoint_url=s3_emulator, region="eu-west-1"), client


def large(order_id: str) -> saga.Event:
    """An order.placed of about 100 KiB (a newer publisher's extra data field)."""
    data = {"movie_id": 7, "quantity": 1, "total_amount": "9.99", "principal": {"sub": "alice", "name": None},
            "note": "n" * 100 * 1024}
    return saga.new_event(saga.ORDER_PLACED, order_id, data)


def publish_claim(setup: Setup, event: saga.Event, store: claim_check.Store, tamper=None) -> None:
    """Publish ``event`` as the relay would with a claim-check store; ``tamper(reference)`` runs in between."""
    wire, headers = claim_check.wrap(event.body(), store)
    if tamper is not None:
        tamper(json.loads(wire)["claim_check"])
    with setup.rabbitmq.channel() as channel:
        channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2, message_id=event.event_id, headers=headers)
        channel.basic_publish(setup.exchange, event.routing_key, wire, properties, mandatory=True)


def test_a_claim_check_is_redeemed_and_applied(setup, claims):
    """A 100 KiB event sent by claim check is fetched from S3, checked, and applied like any other."""
    store, fetch, _ = claims
    setup.start(claim_check_fetch=fetch)
    event = large("big-1")
    publish_claim(setup, event, store)
    wait_until(lambda: setup.rows() == [(event.event_id, "big-1")], 20, "the large event applied")
    assert setup.dead_letters() == []


def test_a_changed_claim_check_object_is_dead_lettered(setup, claims):
    """Bytes in S3 that are not the referenced ones (same size, another sha256) are never used: dead letter,
    nothing applied."""
    store, fetch, client = claims
    setup.start(claim_check_fetch=fetch)
    event = large("big-2")

    def tamper(reference: dict) -> None:
        changed = event.body().replace(b"nnnn", b"mmmm", 1)
        client.put_object(Bucket=reference["bucket"], Key=reference["key"], Body=changed)

    publish_claim(setup, event, store, tamper)
    wait_until(lambda: setup.rabbitmq.message_count(setup.queue.dead_letter_queue) == 1, 20, "the dead letter")
    [(properties, _)] = setup.dead_letters()
    assert properties.headers["x-dead-letter-kind"] == "claim_check_mismatch"
    assert setup.rows() == []


def test_a_claim_check_without_a_bucket_is_dead_lettered(setup, claims):
    """A consumer with no claim-check bucket cannot redeem a reference: it dead-letters it with why."""
    store, _, _ = claims
    setup.start()
    publish_claim(setup, large("big-4"), store)
    wait_until(lambda: setup.rabbitmq.message_count(setup.queue.dead_letter_queue) == 1, 20, "the dead letter")
    [(properties, _)] = setup.dead_letters()
    assert properties.headers["x-dead-letter-kind"] == "claim_check_unconfigured"
    assert setup.rows() == []


def test_the_consumer_forgets_inbox_records_past_the_retention(setup):
    """Inbox records older than the retention are deleted by the consumer itself; a recent one stays (it still
    guards against a redelivery)."""
    setup.postgres.query(
        "billing_db",
        f"INSERT INTO {setup.inbox.name} (consumer, event_id, processed_at) VALUES"  # noqa: S608
        " ('it', 'old', now() - interval '40 days'), ('it', 'recent', now() - interval '1 day')",
    )
    setup.start(inbox_retention_days=30)
    remaining = f"SELECT event_id FROM {setup.inbox.name} ORDER BY 1"  # noqa: S608
    wait_until(lambda: setup.postgres.query("billing_db", remaining) == [("recent",)], 20, "the old record to go")


def test_no_event_is_taken_while_the_database_check_fails(setup):
    """A consumer whose database check fails (a service's schema not migrated yet) does not attach, so events
    wait in the queue instead of being dead-lettered; once the check passes they are applied."""
    ready = False

    def check() -> None:
        if not ready:
            raise DatabaseUnavailable("not migrated yet")

    consumer = setup.start(database_check=check, wait=False)
    with setup.rabbitmq.channel() as channel:  # the consumer declares them only once it attaches
        declare_saga(channel, setup.exchange, (setup.queue,))
    event = placed("later-1")
    setup.publish(event.body(), event.routing_key, event.event_id)
    time.sleep(1.5)
    assert not consumer.is_consuming and setup.rows() == [] and "not migrated yet" in consumer.last_problem
    ready = True
    wait_until(lambda: setup.rows() == [(event.event_id, "later-1")], 30, "the event applied")
    assert setup.dead_letters() == []
