"""Orders end to end: gateway -> RabbitMQ -> billing -> PostgreSQL, including the failure cases."""

from __future__ import annotations

import json
import time
import uuid

import pika
import pytest
from e2e_support import new_marker, order, rows_for, wait_for_rows

from contract.messaging import BILLING_QUEUE

pytestmark = pytest.mark.e2e


def _post(http, gateway, body, **headers):
    return http.post(f"{gateway}/api/billing", data=body, headers={"Content-Type": "application/json", **headers})


def test_order_lands_once_with_its_request_id(gateway, http, billing_db):
    """A posted order is confirmed with 200 and becomes exactly one row carrying the request id."""
    marker = new_marker()
    request_id = f"req-{uuid.uuid4().hex}"
    response = _post(http, gateway, order(marker, 5, "180"), **{"X-Request-ID": request_id})
    assert response.status_code == 200
    assert response.json()["message"] == "Message posted"
    rows = wait_for_rows(billing_db, marker, 1)
    assert len(rows) == 1
    user_id, items, amount, message_id, stored_request_id = rows[0]
    assert (user_id, items, str(amount)) == (marker, 5, "180.00")
    assert message_id == response.json()["message_id"]
    assert stored_request_id == request_id


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"user_id": "1", "number_of_items": "-5", "total_amount": "1"}',
        b'{"user_id": "1", "number_of_items": "5"}',
        b'{"user_id": "1", "number_of_items": "x", "total_amount": "1"}',
        b'{"user_id": "1", "number_of_items": 1, "total_amount": "1", "extra": 1}',
    ],
)
def test_bad_orders_are_rejected_before_the_queue(gateway, http, body):
    """Invalid orders get 400 with a JSON error and are never published."""
    response = _post(http, gateway, body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_orders_survive_billing_being_stopped(gateway, http, billing_db, local_system):
    """Billing stopped: orders are still accepted; billing started: every one lands exactly once."""
    marker = new_marker()
    local_system.stop_service("billing")
    try:
        for i in range(20):
            assert _post(http, gateway, order(marker, i + 1)).status_code == 200
        time.sleep(0.5)
        assert rows_for(billing_db, marker) == []
    finally:
        local_system.start_service("billing")
    rows = wait_for_rows(billing_db, marker, 20)
    assert sorted(r[1] for r in rows) == list(range(1, 21))
    time.sleep(1.0)  # anything redelivered would show up as an extra row by now
    assert len(rows_for(billing_db, marker)) == 20


def test_poison_message_goes_to_the_dead_letter_queue(amqp, billing_db):
    """A message billing can never process ends in billing.orders.dlq with the reason, and stores nothing."""
    marker = new_marker()
    poison = json.dumps({"user_id": marker, "number_of_items": "-3", "total_amount": "1"}).encode()
    message_id = uuid.uuid4().hex
    amqp.basic_publish(
        "",
        BILLING_QUEUE.name,
        poison,
        pika.BasicProperties(message_id=message_id, delivery_mode=pika.DeliveryMode.Persistent),
    )
    deadline = time.monotonic() + 20
    found = None
    while found is None and time.monotonic() < deadline:
        method, properties, body = amqp.basic_get(BILLING_QUEUE.dead_letter_queue, auto_ack=False)
        if method is None:
            time.sleep(0.2)
            continue
        if body == poison:
            found = properties
            amqp.basic_ack(method.delivery_tag)
        else:
            amqp.basic_nack(method.delivery_tag, requeue=True)
    assert found is not None, f"poison message did not reach {BILLING_QUEUE.dead_letter_queue}"
    headers = found.headers or {}
    assert "number_of_items" in str(headers.get("x-dead-letter-reason"))
    assert rows_for(billing_db, marker) == []


def test_broker_restart_while_gateway_is_up(gateway, http, billing_db, local_system):
    """RabbitMQ restarts: the gateway answers 503 (never a false 200) while it is down and recovers after;
    every order that got a 200 lands exactly once."""
    marker = new_marker()
    assert _post(http, gateway, order(marker, 1)).status_code == 200
    local_system.stop_service("rabbitmq")
    try:
        during = _post(http, gateway, order(marker, 2))
        assert during.status_code == 503
        assert "error" in during.json()
    finally:
        local_system.start_service("rabbitmq")
    accepted = 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _post(http, gateway, order(marker, 3)).status_code == 200:
            accepted += 1
            break
        time.sleep(0.5)
    assert accepted == 2, "gateway did not recover after the broker came back"
    rows = wait_for_rows(billing_db, marker, 2, timeout=40)
    assert sorted(r[1] for r in rows) == [1, 3]


def test_inventory_down_gives_502_json(gateway, http, local_system):
    """Inventory unreachable: the gateway answers 502 with a JSON error, and recovers when it is back."""
    local_system.stop_service("inventory")
    try:
        response = http.get(f"{gateway}/api/movies")
        assert response.status_code == 502
        assert "inventory" in response.json()["error"]
    finally:
        local_system.start_service("inventory")
    assert http.get(f"{gateway}/api/movies").status_code == 200
