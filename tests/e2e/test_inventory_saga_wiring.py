"""The local system's inventory service runs its part of the purchase saga: it reaches the broker with the
settings the local system gives it (like billing's) and consumes ``inventory.saga``. The saga's path through
every service is tests/e2e/test_saga.py's."""

from __future__ import annotations

import time

import pytest
import requests

from contract import saga

pytestmark = pytest.mark.e2e


def test_inventory_consumes_its_saga_queue(local_system, inventory_url, rabbitmq):
    """/ready reports the saga consumer attached, and RabbitMQ counts consumers on inventory.saga (one per
    worker: competing consumers)."""
    deadline = time.monotonic() + 30
    while True:
        body = requests.get(f"{inventory_url}/ready", timeout=5).json()
        with rabbitmq.channel() as channel:
            consumers = channel.queue_declare(saga.INVENTORY_EVENTS.name, passive=True).method.consumer_count
        if (body["saga"]["consuming"] and consumers >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert body["status"] == "ready"
    assert body["saga"]["consuming"] is True, body["saga"]
    assert consumers >= 1
