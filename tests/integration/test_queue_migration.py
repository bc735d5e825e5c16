"""Quorum queues against the real test RabbitMQ (3.10, as Debian 12 ships it): the migration from the classic
queue without losing an order, the broker's delivery limit for a consumer that crashes on a message, and
declarations that are identical in every publisher and consumer.

Every test uses a queue of its own (``billing_it_<random>``) and, for the migration, a legacy classic queue of
its own (``<queue>-legacy``), so the billing service of the e2e system never takes its messages.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pika
import pika.exceptions
import pytest

from billing.deadletters import list_dead_letters, replay_dead_letters
from common.amqp import declare_topology
from common.config import RabbitSettings
from contract.messaging import BILLING_QUEUE, DELIVERY_LIMIT_REASON

# Fixtures and helpers of the consumer tests, used here by name.
from tests.integration.test_billing_consumer import (  # noqa: F401
    VALID,
    Queue,
    billing_env,
    queue,
    start_consumer,
    wait_until,
)

pytestmark = pytest.mark.integration


def with_legacy_queue(settings: RabbitSettings, legacy: str) -> RabbitSettings:
    """``settings`` whose billing queue replaces the classic queue ``legacy`` (instead of ``billing_queue``)."""
    # Only the standard queue replaced a classic one; the express queue never had a predecessor.
    queues = {
        key: replace(declared, legacy_classic_queue=legacy) if key == BILLING_QUEUE.name else declared
        for key, declared in settings.queues.items()
    }
    return replace(settings, queues=queues)


def publish_the_old_way(rabbitmq, legacy: str, ids: list[str]) -> None:
    """What the old gateway did: declare the classic durable queue (no arguments) and publish persistent,
    confirmed orders to it."""
    with rabbitmq.channel() as channel:
        channel.queue_declare(legacy, durable=True)
        channel.confirm_delivery()
        for message_id in ids:
            properties = pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=message_id,
                headers={"x-request-id": message_id},
            )
            channel.basic_publish("", legacy, json.dumps(VALID).encode(), properties, mandatory=True)


@pytest.fixture
def legacy(queue, rabbitmq) -> Iterator[str]:  # noqa: F811
    """The name of this test's legacy classic queue; it and its dead-letter queue are deleted afterwards."""
    name = f"{queue.name}-legacy"
    yield name
    rabbitmq.delete(name, f"{name}.dlq")


def consumer_count(rabbitmq, name: str) -> int:
    """Consumers attached to queue ``name`` (0 when it does not exist)."""
    with rabbitmq.channel() as channel:
        try:
            return channel.queue_declare(name, passive=True).method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0


# -- migration ----------------------------------------------------------------------------------------------
def test_legacy_classic_queue_is_drained_exactly_once(queue, legacy, start_consumer, rabbitmq):  # noqa: F811
    """N orders wait in the classic queue when the new billing starts; M more arrive there while it runs (an
    old gateway task of a rolling deploy) and K through the new quorum queue: all N+M+K are stored exactly
    once and both queues end empty. Deleting the legacy queue afterwards does not disturb the consumer."""
    before = [f"{queue.name}-old-{i}" for i in range(500)]
    during = [f"{queue.name}-rolling-{i}" for i in range(300)]
    publish_the_old_way(rabbitmq, legacy, before)
    consumer = start_consumer(rabbit=with_legacy_queue(RabbitSettings.from_env(), legacy))
    wait_until(lambda: consumer_count(rabbitmq, legacy) == 1, 10, "the consumer to attach to the legacy queue")

    def old_gateway() -> None:
        for start in range(0, len(during), 30):
            publish_the_old_way(rabbitmq, legacy, during[start : start + 30])
            time.sleep(0.05)

    publisher = threading.Thread(target=old_gateway, daemon=True)
    publisher.start()
    new = queue.publish([VALID] * 200)
    publisher.join(30)
    total = len(before) + len(during) + len(new)
    wait_until(lambda: queue.row_count() == total, 30, f"all {total} rows")
    time.sleep(0.5)  # a redelivered duplicate would show up by now
    stored = [row[3] for row in queue.rows()]
    assert len(stored) == total
    assert set(stored) == set(before) | set(during) | set(new)
    assert (queue.ready(), rabbitmq.message_count(legacy), queue.dead_letter_count()) == (0, 0, 0)

    # The end of the migration: the operator deletes the empty legacy queue. The broker cancels that
    # subscription only; the consumer stays on the quorum queue without reconnecting.
    rabbitmq.delete(legacy)
    time.sleep(0.5)
    assert consumer.is_consuming and consumer_count(rabbitmq, queue.name) == 1
    [message_id] = queue.publish([VALID])
    wait_until(lambda: queue.row_count() == total + 1, 10, "the order published after the migration")
    assert message_id in {row[3] for row in queue.rows()}


def test_poison_from_the_legacy_queue_names_the_legacy_queue(queue, legacy, start_consumer, rabbitmq):  # noqa: F811
    """A bad order drained from the legacy classic queue is dead-lettered with x-original-queue = that queue,
    not the quorum queue billing also consumes (the reason an operator looks for is where it came from)."""
    with rabbitmq.channel() as channel:
        channel.queue_declare(legacy, durable=True)
        channel.confirm_delivery()
        channel.basic_publish(
            "", legacy, json.dumps({**VALID, "total_amount": "-1"}).encode(),
            pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id=f"{legacy}-poison"),
            mandatory=True,
        )
    consumer = start_consumer(rabbit=with_legacy_queue(RabbitSettings.from_env(), legacy))
    wait_until(lambda: queue.dead_letter_count() == 1, 10, "the dead letter")
    consumer.stop()
    [(properties, _body)] = queue.dead_letters()
    assert properties.headers["x-original-queue"] == legacy
    assert properties.headers["x-original-message-id"] == f"{legacy}-poison"


def test_missing_legacy_queue_is_skipped(queue, legacy, start_consumer, rabbitmq):  # noqa: F811
    """No legacy queue (the normal case after the migration): the consumer attaches and stores orders, and the
    legacy queue is not created by looking for it."""
    start_consumer(rabbit=with_legacy_queue(RabbitSettings.from_env(), legacy))
    queue.publish([VALID])
    wait_until(lambda: queue.row_count() == 1, 10, "the row")
    with rabbitmq.channel() as channel, pytest.raises(pika.exceptions.ChannelClosedByBroker) as missing:
        channel.queue_declare(legacy, passive=True)
    assert missing.value.reply_code == 404


def test_legacy_queue_declared_again_later_is_drained(queue, legacy, start_consumer, rabbitmq, monkeypatch):  # noqa: F811
    """An old gateway task that reconnects declares the classic queue again after billing started: billing
    finds it at its next periodic check and drains it."""
    monkeypatch.setattr("billing.legacy.RECHECK_SECONDS", 0.5)
    start_consumer(rabbit=with_legacy_queue(RabbitSettings.from_env(), legacy))
    late = [f"{queue.name}-late-{i}" for i in range(20)]
    publish_the_old_way(rabbitmq, legacy, late)
    wait_until(lambda: queue.row_count() == len(late), 15, "the orders of the late legacy queue")
    assert rabbitmq.message_count(legacy) == 0


# -- the delivery limit -------------------------------------------------------------------------------------
def crash_on_next_message(rabbitmq, name: str) -> bool:
    """A consumer process that receives one message and dies before acknowledging it (its connection closes).
    Returns whether a message was received."""
    connection = pika.BlockingConnection(rabbitmq.params)
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1)
        received = []
        channel.basic_consume(name, on_message_callback=lambda *args: received.append(args))
        deadline = time.monotonic() + 2
        while not received and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        return bool(received)
    finally:
        # No ack, no cancel: like a killed process, the broker only sees the connection go away.
        with contextlib.suppress(pika.exceptions.AMQPError):
            connection.close()


def test_message_that_crashes_its_consumer_ends_in_the_dead_letter_queue(queue, start_consumer):  # noqa: F811
    """A message received again and again and never acknowledged is moved to ``<queue>.dlq`` by the broker
    after ``delivery_limit`` redeliveries; the dead-letter tool shows it with the reason ``delivery_limit``,
    and its replay stores it once in the right queue."""
    [message_id] = queue.publish([VALID])
    received = 0
    while received <= BILLING_QUEUE.delivery_limit + 3 and crash_on_next_message(queue._rabbitmq, queue.name):
        received += 1
    # The first delivery plus ``delivery_limit`` redeliveries, then the broker moves it.
    assert received == BILLING_QUEUE.delivery_limit + 1
    wait_until(lambda: queue.dead_letter_count() == 1, 10, "the broker to dead-letter the message")
    assert queue.ready() == 0

    [letter] = list_dead_letters(RabbitSettings.from_env(), limit=10)
    assert letter["message_id"] == message_id
    assert letter["kind"] == DELIVERY_LIMIT_REASON
    assert f"delivered more than {BILLING_QUEUE.delivery_limit} times without an acknowledgement" in letter["reason"]
    assert (letter["original_queue"], letter["dead_letter_queue"]) == (queue.name, queue.dlq)
    assert letter["dead_lettered_at"] and letter["request_id"] == "req-0"
    assert queue.dead_letter_count() == 1, "listing must leave the dead letter in place"

    assert replay_dead_letters(RabbitSettings.from_env(), limit=10) == 1
    assert (queue.dead_letter_count(), queue.ready()) == (0, 1)
    start_consumer()
    wait_until(lambda: queue.row_count() == 1, 10, "the replayed row")
    assert queue.rows()[0][3] == message_id


def test_legacy_dead_letters_are_listed_and_replayed_to_the_new_queue(queue, legacy, start_consumer, rabbitmq):  # noqa: F811
    """Dead letters left in the classic queue's dead-letter queue are listed, and replayed into the quorum
    queue (never into the legacy one)."""
    with rabbitmq.channel() as channel:
        channel.queue_declare(f"{legacy}.dlq", durable=True)
        properties = pika.BasicProperties(
            message_id=f"{queue.name}-old-dead",
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={
                "x-dead-letter-kind": "rejected_by_database",
                "x-dead-letter-reason": "CheckViolation: a constraint since removed",
                "x-original-queue": legacy,
            },
        )
        channel.basic_publish("", f"{legacy}.dlq", json.dumps(VALID).encode(), properties)
    settings = with_legacy_queue(RabbitSettings.from_env(), legacy)
    [letter] = list_dead_letters(settings, limit=10)
    assert (letter["kind"], letter["dead_letter_queue"], letter["original_queue"]) == (
        "rejected_by_database",
        f"{legacy}.dlq",
        legacy,
    )
    assert replay_dead_letters(settings, limit=10) == 1
    assert (rabbitmq.message_count(f"{legacy}.dlq"), queue.ready()) == (0, 1)
    start_consumer()
    wait_until(lambda: queue.row_count() == 1, 10, "the replayed legacy dead letter")


# -- identical declarations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("first", ["gateway", "billing"])
def test_gateway_and_billing_declare_identically_in_either_order(first, queue, start_consumer):  # noqa: F811
    """Whoever declares the queues first (a gateway publishing, or billing starting), the other's declaration
    is accepted (no PRECONDITION_FAILED) and the order goes through; a declaration with other arguments (the
    old classic one) is refused, so the check is real."""
    from gateway.publisher import BillingPublisher

    publisher = BillingPublisher(RabbitSettings.from_env())
    consumer = None
    if first == "billing":
        consumer = start_consumer()
    message_id = publisher.publish(json.dumps(VALID).encode(), f"{queue.name}-req")
    if consumer is None:
        start_consumer()
    wait_until(lambda: len(queue.rows()) == 1, 10, "the order")
    assert queue.rows()[0][3] == message_id

    with queue._rabbitmq.channel() as channel:
        declare_topology(channel, RabbitSettings.from_env())  # a third declaration (the dead-letter tool's)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare(queue.name, durable=True)
    assert refused.value.reply_code == 406


def test_declared_arguments_are_the_contracts(queue):  # noqa: F811
    """The broker holds both queues as quorum queues with the contract's arguments."""
    queue.publish([])
    contract = replace(BILLING_QUEUE, name=queue.name)
    with queue._rabbitmq.channel() as channel:
        # A passive declaration with the same arguments succeeds; a different delivery limit does not.
        channel.queue_declare(queue.name, durable=True, arguments=contract.arguments())
        channel.queue_declare(queue.dlq, durable=True, arguments=contract.dead_letter_arguments())
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare(queue.name, durable=True, arguments={**contract.arguments(), "x-delivery-limit": 6})
    assert refused.value.reply_code == 406
