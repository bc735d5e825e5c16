"""The local invoicer (part ``invoicer``: ``local_system/invoicer_runner.py``) against the test system's RabbitMQ and
emulator: an ``order.confirmed`` published to ``movies.events`` becomes a stored PDF and an ``invoice.ready`` on
the exchange; a malformed one lands in ``invoicer.saga.dlq`` with its reason.

The events go through the real exchange and the real ``invoicer.saga`` (the runner consumes only that); the
test watches ``invoice.ready`` on a queue of its own bound to the exchange, and takes its own ``invoice.ready``
back off billing's queue afterwards. Run under ``flock /tmp/test-servers.lock``.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator

import boto3
import pika
import pypdf
import pytest

from contract import messaging, saga
from local_system.saga_resources import INVOICES_BUCKET
from tests.functions.invoice_samples import confirmed
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def watch(test_infrastructure, rabbitmq) -> Iterator[str]:
    """A queue of this test bound to invoice.ready on the saga's exchange (the invoicer runs: it is a part of
    the test infrastructure); removed afterwards, with the test's events on billing's queue."""
    name = f"invoicer_watch_{uuid.uuid4().hex[:10]}"
    with rabbitmq.channel() as channel:
        channel.exchange_declare(saga.EXCHANGE, saga.EXCHANGE_TYPE, durable=True)
        channel.queue_declare(name, exclusive=False, auto_delete=False, durable=False)
        channel.queue_bind(name, saga.EXCHANGE, routing_key=saga.INVOICE_READY)
    yield name
    rabbitmq.delete(name)


def publish(rabbitmq, body: bytes, message_id: str) -> None:
    """``body`` to the saga's exchange as billing publishes order.confirmed (persistent, confirmed)."""
    with rabbitmq.channel() as channel:
        channel.confirm_delivery()
        channel.basic_publish(saga.EXCHANGE, saga.ORDER_CONFIRMED, body, pika.BasicProperties(
            content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id,
            type=saga.ORDER_CONFIRMED,
        ), mandatory=True)


def take(rabbitmq, queue: str, match: Callable[[pika.BasicProperties, bytes], bool]) -> list:
    """The messages of ``queue`` that ``match``, taken off it; the others are left (returned when the channel
    closes)."""
    found = []
    with rabbitmq.channel() as channel:
        while True:
            method, properties, body = channel.basic_get(queue)
            if method is None:
                return found
            if match(properties, body):
                channel.basic_ack(method.delivery_tag)
                found.append((properties, body))


def test_order_confirmed_becomes_a_stored_invoice_and_an_invoice_ready(test_infrastructure, rabbitmq, watch):
    """The runner stores the order's PDF in the emulator's invoices bucket and publishes invoice.ready whose
    claim check (key, sha256, size) is the stored object's."""
    order_id = uuid.uuid4().hex + uuid.uuid4().hex
    event = confirmed(order_id)
    event["event_id"] = uuid.uuid4().hex
    try:
        publish(rabbitmq, json.dumps(event).encode(), event["event_id"])
        ((properties, body),) = wait_until(lambda: take(rabbitmq, watch, lambda p, b: True), 30, "invoice.ready")
        ready = saga.parse_event(body, message_id=properties.message_id, routing_key=properties.type)
        assert (ready.type, ready.order_id) == (saga.INVOICE_READY, order_id)
        s3 = boto3.client("s3", endpoint_url=test_infrastructure.identity.url, region_name="eu-west-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
        stored = s3.get_object(Bucket=INVOICES_BUCKET, Key=ready.data["key"])["Body"].read()
        assert ready.data["size"] == len(stored) and ready.data["key"] == f"invoices/{order_id}.pdf"
        assert ready.data["sha256"] == hashlib.sha256(stored).hexdigest()
        assert order_id in pypdf.PdfReader(io.BytesIO(stored)).pages[0].extract_text()
    finally:
        take(rabbitmq, saga.BILLING_EVENTS.name, lambda p, b: order_id.encode() in b)


def test_malformed_order_confirmed_is_dead_lettered_with_its_reason(test_infrastructure, rabbitmq, watch):
    """An order.confirmed whose amounts contradict each other is moved to invoicer.saga.dlq with the reason and
    kind headers and its original message id; no invoice.ready is published for it."""
    order_id = uuid.uuid4().hex
    event = confirmed(order_id, total_amount="99.00")
    event["event_id"] = uuid.uuid4().hex
    publish(rabbitmq, json.dumps(event).encode(), event["event_id"])
    mine = lambda properties, body: properties.message_id == event["event_id"]  # noqa: E731
    ((properties, body),) = wait_until(lambda: take(rabbitmq, saga.INVOICER_EVENTS.dead_letter_queue, mine), 30,
                                     "the dead letter")
    assert json.loads(body) == event
    assert "is not unit_price 12.50 x quantity 3" in properties.headers[messaging.DEAD_LETTER_REASON]
    assert properties.headers[messaging.DEAD_LETTER_KIND] == "mismatch"
    assert properties.headers[messaging.ORIGINAL_QUEUE] == saga.INVOICER_EVENTS.name
    assert take(rabbitmq, watch, lambda p, b: True) == []
