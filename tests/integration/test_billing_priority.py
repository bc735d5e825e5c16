"""Express orders against the real test PostgreSQL and RabbitMQ: billing stores them ahead of standard ones,
dead-letters them to the express dead-letter queue, and the dead-letter tool covers both queues.

Each test has queues of its own (``billing_it_<random>`` and ``billing_it_<random>.express``, set through
BILLING_QUEUE and BILLING_EXPRESS_QUEUE by the consumer tests' ``billing_env`` fixture).
"""

# ruff: noqa: F811 - the consumer tests' fixtures are imported by name, then requested as arguments
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from billing.deadletters import list_dead_letters, replay_dead_letters
from common.config import RabbitSettings
from contract.messaging import EXPRESS_QUEUE
from gateway.publisher import BillingPublisher

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

EXPRESS = {**VALID, "priority": "express"}


@pytest.fixture
def express(queue) -> Iterator[Queue]:
    """The test's express queue (deleted with the standard one by the ``queue`` fixture)."""
    yield Queue(f"{queue.name}.express", queue._rabbitmq, queue._postgres)


def stored_in_order(standard: Queue) -> list[tuple[str, str]]:
    """(message id, priority) of every row of this test (both queues), in the order they were stored."""
    return standard._postgres.query(
        "billing_db",
        "SELECT message_id, priority FROM orders WHERE message_id LIKE %s ORDER BY id",
        (f"{standard.name}%",),
    )


def test_a_waiting_express_backlog_is_stored_before_a_larger_standard_one(queue, express, start_consumer):
    """3,000 standard orders queued, then 50 express ones: once billing starts, every express order is stored
    before the 150th standard one (in fact before the first), each with its priority."""
    queue.publish([VALID] * 3000, confirm=False)
    express_ids = set(express.publish([EXPRESS] * 50))
    start_consumer()
    wait_until(lambda: len(stored_in_order(queue)) == 3050, 60, "all 3,050 rows")
    rows = stored_in_order(queue)
    standard_positions = [i for i, (message_id, _) in enumerate(rows) if message_id not in express_ids]
    express_positions = [i for i, (message_id, _) in enumerate(rows) if message_id in express_ids]
    assert max(express_positions) < standard_positions[149]
    assert {priority for message_id, priority in rows if message_id in express_ids} == {"express"}
    assert {priority for message_id, priority in rows if message_id not in express_ids} == {"standard"}


def test_an_express_order_overtakes_the_standard_backlog_being_drained(queue, express, start_consumer):
    """Express orders published while billing drains 6,000 standard ones wait at most for the standard
    deliveries billing already holds (prefetch) and the batch it is writing, not for the backlog."""
    prefetch, batch_size = 200, 100
    queue.publish([VALID] * 6000, confirm=False)
    start_consumer(prefetch=prefetch, batch_size=batch_size)
    wait_until(lambda: queue.row_count() >= 500, 60, "billing to be draining the standard backlog")
    express_ids = set(express.publish([EXPRESS] * 20))  # confirmed: in the queue once this returns
    stored_before = {message_id for message_id, _ in stored_in_order(queue)}
    wait_until(lambda: express.row_count() == 20, 60, "the 20 express rows")
    rows = [message_id for message_id, _ in stored_in_order(queue)]
    last_express = max(rows.index(message_id) for message_id in express_ids)
    overtaken_by = [m for m in rows[:last_express] if m not in stored_before and m not in express_ids]
    assert len(overtaken_by) <= prefetch + batch_size
    assert queue.ready() > 0, "the standard backlog was already drained: the test proved nothing"


def test_a_poison_express_order_goes_to_the_express_dead_letter_queue(queue, express, start_consumer):
    """An express order billing can never store ends in <express queue>.dlq with its reason, not in the
    standard queue's dead-letter queue."""
    start_consumer()
    [message_id] = express.publish([{**EXPRESS, "number_of_items": "-3"}])
    wait_until(lambda: express.dead_letter_count() == 1, 20, "the express dead letter")
    [(properties, _body)] = express.dead_letters()
    assert properties.message_id == message_id
    assert "number_of_items" in properties.headers["x-dead-letter-reason"]
    assert properties.headers["x-original-queue"] == express.name
    assert queue.dead_letter_count() == 0


def test_dead_letters_of_both_queues_are_listed_and_replayed_into_their_own_queue(queue, express, start_consumer):
    """``billing.deadletters list`` shows the dead letters of both queues (express first) and ``replay``
    moves each back to the queue it died on."""
    consumer = start_consumer()
    [standard_id] = queue.publish([{**VALID, "total_amount": "x"}])
    [express_id] = express.publish([{**EXPRESS, "total_amount": "x"}])
    wait_until(lambda: queue.dead_letter_count() == 1 and express.dead_letter_count() == 1, 20, "two dead letters")
    consumer.stop(timeout=20)
    settings = RabbitSettings.from_env()

    letters = list_dead_letters(settings, limit=10)
    assert [(letter["message_id"], letter["dead_letter_queue"]) for letter in letters] == [
        (express_id, express.dlq),
        (standard_id, queue.dlq),
    ]
    assert [letter["message_id"] for letter in list_dead_letters(settings, 10, priority="standard")] == [standard_id]

    assert replay_dead_letters(settings, limit=10) == 2
    assert (queue.ready(), express.ready(), queue.dead_letter_count(), express.dead_letter_count()) == (1, 1, 0, 0)


def test_the_gateway_publisher_routes_to_the_queue_it_is_given(queue, express):
    """``BillingPublisher.publish(queue=EXPRESS_QUEUE)`` lands in the express queue as named on this broker;
    the default stays the standard queue (its topology declares both)."""
    publisher = BillingPublisher(RabbitSettings.from_env())
    try:
        publisher.publish(json.dumps(EXPRESS).encode(), "req-express", queue=EXPRESS_QUEUE)
        publisher.publish(json.dumps(VALID).encode(), "req-standard")
    finally:
        publisher._close()
    assert (express.ready(), queue.ready()) == (1, 1)
