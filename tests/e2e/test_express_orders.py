"""Express orders end to end: gateway -> billing.orders.express -> billing, ahead of standard orders."""

from __future__ import annotations

import json
import time
import uuid

import pika
import pytest
from e2e_support import new_marker

from contract.messaging import EXPRESS_QUEUE

pytestmark = pytest.mark.e2e

STANDARD_ORDERS, EXPRESS_ORDERS = 300, 20


def _post(http, gateway, marker: str, items: int, priority: str | None = None):
    order = {"user_id": marker, "number_of_items": str(items), "total_amount": "10"}
    if priority is not None:
        order["priority"] = priority
    return http.post(f"{gateway}/api/billing", json=order)


def _rows_in_storage_order(billing_db, marker: str) -> list[tuple[int, str]]:
    """(number_of_items, priority) of the marker's orders, in the order billing stored them."""
    with billing_db.cursor() as cur:
        cur.execute("SELECT number_of_items, priority FROM orders WHERE user_id = %s ORDER BY id", (marker,))
        return cur.fetchall()


def test_express_orders_are_stored_before_the_150th_standard_one(gateway, http, billing_db, local_system):
    """Billing stopped, 300 standard and then 20 express orders posted: once billing starts, every express
    order is stored before the 150th standard one, and each row keeps its priority."""
    marker = new_marker()
    local_system.stop_service("billing")
    try:
        for i in range(STANDARD_ORDERS):
            assert _post(http, gateway, marker, i + 1).status_code == 200
        for i in range(EXPRESS_ORDERS):
            assert _post(http, gateway, marker, 10_000 + i, "express").status_code == 200
    finally:
        local_system.start_service("billing")
    deadline = time.monotonic() + 60
    rows = _rows_in_storage_order(billing_db, marker)
    while len(rows) < STANDARD_ORDERS + EXPRESS_ORDERS and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = _rows_in_storage_order(billing_db, marker)
    assert len(rows) == STANDARD_ORDERS + EXPRESS_ORDERS
    express = [i for i, (_, priority) in enumerate(rows) if priority == "express"]
    standard = [i for i, (_, priority) in enumerate(rows) if priority == "standard"]
    assert sorted(items for items, priority in rows if priority == "express") == list(range(10_000, 10_020))
    assert max(express) < standard[149]


def test_an_unknown_priority_is_a_400_naming_the_allowed_ones(gateway, http):
    """A priority of "urgent" is refused before the queue with a JSON error listing standard and express."""
    response = _post(http, gateway, new_marker(), 1, "urgent")
    assert response.status_code == 400
    assert response.json()["error"] == 'priority must be "standard" or "express", got \'urgent\''


def test_a_poison_express_order_goes_to_the_express_dead_letter_queue(amqp, billing_db):
    """A message on billing.orders.express that billing can never store ends in billing.orders.express.dlq."""
    marker = new_marker()
    poison = json.dumps({"user_id": marker, "number_of_items": "0", "total_amount": "1", "priority": "express"})
    amqp.basic_publish(
        "",
        EXPRESS_QUEUE.name,
        poison.encode(),
        pika.BasicProperties(message_id=uuid.uuid4().hex, delivery_mode=pika.DeliveryMode.Persistent),
    )
    deadline = time.monotonic() + 20
    found = None
    while found is None and time.monotonic() < deadline:
        method, properties, body = amqp.basic_get(EXPRESS_QUEUE.dead_letter_queue, auto_ack=False)
        if method is None:
            time.sleep(0.2)
        elif body == poison.encode():
            found = properties
            amqp.basic_ack(method.delivery_tag)
        else:
            amqp.basic_nack(method.delivery_tag, requeue=True)
    assert found is not None, f"poison message did not reach {EXPRESS_QUEUE.dead_letter_queue}"
    assert found.headers["x-original-queue"] == EXPRESS_QUEUE.name
    assert _rows_in_storage_order(billing_db, marker) == []
