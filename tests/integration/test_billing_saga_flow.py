# ruff: noqa: F811 - the fixtures of test_billing_consumer are imported, then named as test arguments
"""Billing's saga threads against the real test RabbitMQ and PostgreSQL: a purchase on the order queue is stored
pending and its ``order.placed`` relayed to ``movies.events``; inventory's events (hand-built, published to the
exchange as inventory publishes them) reach the real ``billing.saga`` consumer, which confirms and relays
``order.confirmed``, or dead-letters an event about an order billing never stored.

The observer is an exclusive queue of the test's own bound to ``movies.events``; the saga queues the relay
declares are purged afterwards so no other test (or system) sees these events.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest

from billing.saga_runner import SagaRunner
from billing.store import OrderStore
from common.config import DatabaseSettings, RabbitSettings
from common.db import ConnectionPool
from contract import saga
from contract.messaging import DEAD_LETTER_KIND, DEAD_LETTER_REASON
from tests.integration.billing_saga_support import (  # noqa: F401 - no_*_service are fixtures
    MOVIE,
    drop_outbox_after,
    new_owner,
    no_billing_service,
    no_inventory_service,
    outbox_mark,
    purchase_body,
    purchase_row,
    reserved,
    store_purchase,
)
from tests.integration.test_billing_consumer import (  # noqa: F401 - fixtures
    billing_env,
    queue,
    start_consumer,
    wait_until,
)

# A running billing (left by an e2e test) would relay the outbox rows these tests read, a running inventory
# answer the order.placed they relay: both stopped first.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_billing_service", "no_inventory_service")]


@pytest.fixture
def runner(billing_env, rabbitmq, postgres) -> Iterator[SagaRunner]:
    """Billing's relay and billing.saga consumer, started (schema first) and attached; stopped afterwards."""
    rabbitmq.purge(saga.BILLING_EVENTS.name, saga.BILLING_EVENTS.dead_letter_queue)
    store = OrderStore(ConnectionPool(DatabaseSettings.from_env("billing_db"), "it-saga-flow"))
    store.check()
    mark = outbox_mark(postgres)
    runner = SagaRunner(store, RabbitSettings.from_env())
    runner.start()
    wait_until(lambda: runner.consumer.is_consuming, 30, "the saga consumer to attach")
    yield runner
    runner.stop()
    drop_outbox_after(postgres, mark)
    store.close()
    rabbitmq.purge(*(q.name for q in saga.SAGA_QUEUES), saga.BILLING_EVENTS.dead_letter_queue)


@pytest.fixture
def observed(rabbitmq, runner) -> Iterator[Callable[[str, str], saga.Event]]:
    """``wait_for(type, order_id)``: the event of that type and order published to movies.events (waits)."""
    connection = pika.BlockingConnection(rabbitmq.params)
    channel = connection.channel()
    name = channel.queue_declare(f"it-observer-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True).method.queue
    for event_type in (saga.ORDER_PLACED, saga.ORDER_CONFIRMED, saga.ORDER_CANCELLED):
        channel.queue_bind(name, saga.EXCHANGE, event_type)
    seen: list[saga.Event] = []

    def wait_for(event_type: str, order_id: str) -> saga.Event:
        def arrived() -> bool:
            method, properties, body = channel.basic_get(name, auto_ack=True)
            if method is not None:
                seen.append(saga.parse_event(body, message_id=properties.message_id, routing_key=method.routing_key))
            return any(e.type == event_type and e.order_id == order_id for e in seen)

        wait_until(arrived, 20, f"{event_type} of {order_id} on {saga.EXCHANGE}")
        return next(e for e in seen if e.type == event_type and e.order_id == order_id)

    yield wait_for
    connection.close()


def _publish(rabbitmq, event: saga.Event) -> None:
    """Publish ``event`` to the saga's exchange as its publisher does (persistent, ids in the properties)."""
    with rabbitmq.channel() as channel:
        channel.confirm_delivery()
        channel.basic_publish(saga.EXCHANGE, event.routing_key, event.body(), pika.BasicProperties(
            content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
            message_id=event.event_id, type=event.type,
        ), mandatory=True)


def test_a_purchase_from_the_order_queue_is_stored_pending_and_order_placed_is_published(
    queue, start_consumer, observed, postgres
):
    """The whole billing entry: order queue -> pending row -> outbox -> relay -> order.placed on the exchange."""
    start_consumer()
    [order_id] = queue.publish([json.loads(purchase_body(movie_id=MOVIE + 3, quantity=4, total="40"))],
                              ids=[secrets.token_hex(32)])
    placed = observed(saga.ORDER_PLACED, order_id)
    assert (placed.data["movie_id"], placed.data["quantity"], placed.data["total_amount"]) == (MOVIE + 3, 4, "40.00")
    assert purchase_row(postgres, order_id)[0] == "pending"


def test_a_purchase_without_a_message_id_is_dead_lettered_as_invalid(queue, start_consumer):
    """No message id, no saga order id: the purchase goes to the dead-letter queue saying so, nothing stored."""
    start_consumer()
    queue.publish([json.loads(purchase_body())], ids=[None])
    wait_until(lambda: queue.dead_letter_count() == 1, 20, "the dead letter")
    [(properties, _)] = queue.dead_letters()
    assert properties.headers[DEAD_LETTER_KIND] == "invalid_value"
    assert "needs a message id" in properties.headers[DEAD_LETTER_REASON]


def test_stock_reserved_on_the_exchange_confirms_and_order_confirmed_is_published(
    runner, observed, rabbitmq, postgres
):
    """The real billing.saga consumer applies inventory's stock.reserved: confirmed, and order.confirmed relayed."""
    store = OrderStore(ConnectionPool(DatabaseSettings.from_env("billing_db"), "it-saga-flow-writer"))
    try:
        order_id = store_purchase(store, new_owner())
    finally:
        store.close()
    _publish(rabbitmq, reserved(order_id, "12.50", title="Heat"))
    confirmed = observed(saga.ORDER_CONFIRMED, order_id)
    assert (confirmed.data["unit_price"], confirmed.data["title"]) == ("12.50", "Heat")
    assert purchase_row(postgres, order_id)[0] == "confirmed"


def test_stock_reserved_for_an_unknown_order_is_dead_lettered_with_the_reason(runner, rabbitmq):
    """An event about an order billing never stored goes to billing.saga.dlq with the handler's reason."""
    _publish(rabbitmq, reserved(secrets.token_hex(32)))
    dlq = saga.BILLING_EVENTS.dead_letter_queue
    wait_until(lambda: rabbitmq.message_count(dlq) == 1, 20, "the dead letter")
    with rabbitmq.channel() as channel:
        _, properties, _ = channel.basic_get(dlq, auto_ack=True)
    assert properties.headers[DEAD_LETTER_KIND] == "handler_failed"
    assert "not a purchase billing stored" in properties.headers[DEAD_LETTER_REASON]
