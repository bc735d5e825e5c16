"""Two billing processes of the test system (``make scale SERVICE=billing REPLICAS=2``): one leader, failover
after ``kill -9`` within 15 s, and the leader's jobs' effects each exactly once."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pika
import pytest
import requests

from contract.messaging import BILLING_QUEUE
from tests.e2e.e2e_support import kill_9
from tests.waiting import wait_until

#: The issue's budget from a leader's death to a new leader.
FAILOVER_BUDGET = 15.0


def leading(copies) -> list:
    """The copies whose /ready (or /health while not ready) says ``"leader": true``."""
    found = []
    for copy in copies:
        try:
            body = requests.get(f"{copy.url}/health", timeout=2).json()
        except (requests.RequestException, ValueError):
            continue
        if body.get("leader") is True:
            found.append(copy)
    return found


@pytest.fixture
def two_billings(local_system, postgres):
    """Billing stopped, its orders and aggregates emptied, then two copies started; back to one afterwards."""
    local_system.scale("billing", 1)
    local_system.stop_service("billing")
    postgres.truncate("billing_db", "orders", "order_minutes")
    yield local_system, postgres
    local_system.scale("billing", 1)


def insert_orders(postgres, minute: datetime, amounts: list[str]) -> None:
    """Order rows stamped inside ``minute`` (as if billing stored them then)."""
    for second, amount in enumerate(amounts):
        postgres.query(
            "billing_db",
            "INSERT INTO orders (user_id, number_of_items, total_amount, message_id, created_at)"
            " VALUES ('e2e-agg', 1, %s, %s, %s)",
            (amount, uuid.uuid4().hex, minute + timedelta(seconds=second)),
        )


def minutes(postgres) -> list[tuple]:
    """(minute, orders, revenue, repeats) of every aggregated minute."""
    return postgres.query("billing_db", "SELECT minute, orders, revenue, repeats FROM order_minutes ORDER BY 1")


def test_one_leader_fails_over_within_budget_and_each_minute_is_written_once(two_billings):
    """Exactly one of two copies leads; kill -9 of its gunicorn master and worker makes the other lead
    within 15 s; the aggregates of both leaders' runs hold every minute once, never repeated."""
    system, postgres = two_billings
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    insert_orders(postgres, base, ["10", "5"])
    insert_orders(postgres, base + timedelta(minutes=1), ["1.25"])

    copies = system.scale("billing", 2)
    [leader] = wait_until(lambda: leading(copies), FAILOVER_BUDGET, "a leader")
    time.sleep(1)  # a second leader would have shown up by now (the election retries every 2 s)
    assert leading(copies) == [leader]
    wait_until(lambda: len(minutes(postgres)) == 2, 10, "the first leader's aggregates")

    kill_9(leader)
    killed_at = time.monotonic()
    [survivor] = [copy for copy in copies if copy is not leader]
    wait_until(lambda: leading([survivor]), FAILOVER_BUDGET, "the surviving copy to lead")
    print(f"\nfailover after {time.monotonic() - killed_at:.1f} s")

    # A minute after the newest written one: only the new leader can write it.
    insert_orders(postgres, base + timedelta(minutes=2), ["2", "3", "4"])
    wait_until(lambda: len(minutes(postgres)) == 3, 10, "the new leader's aggregates")
    time.sleep(3)  # at least one more job run of the new leader
    assert minutes(postgres) == [
        (base, 2, Decimal("15.00"), 0),
        (base + timedelta(minutes=1), 1, Decimal("1.25"), 0),
        (base + timedelta(minutes=2), 3, Decimal("9.00"), 0),
    ]


def test_leader_redrives_a_transient_dead_letter_and_keeps_a_permanent_one(local_system, rabbitmq, postgres):
    """A dead letter the broker moved past the delivery limit is re-driven by billing's leader and stored
    once; one billing judged invalid stays in the dead-letter queue."""
    wait_until(lambda: leading(local_system.replicas("billing")), FAILOVER_BUDGET, "a leader")
    marker = f"e2e-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"user_id": marker, "number_of_items": "1", "total_amount": "7"}).encode()
    transient, permanent = f"{marker}-transient", f"{marker}-permanent"
    death = {"queue": BILLING_QUEUE.name, "reason": "delivery_limit", "count": 1, "exchange": "",
             "time": datetime.now(UTC)}
    with rabbitmq.channel() as channel:
        for message_id, headers in (
            (transient, {"x-death": [death]}),
            (permanent, {"x-dead-letter-kind": "invalid_value", "x-dead-letter-reason": "test", "x-death": [death]}),
        ):
            properties = pika.BasicProperties(message_id=message_id, delivery_mode=2, headers=headers)
            channel.basic_publish("", BILLING_QUEUE.dead_letter_queue, body, properties)

    def stored() -> list[tuple]:
        return postgres.query("billing_db", "SELECT message_id FROM orders WHERE user_id = %s", (marker,))

    wait_until(stored, 20, "the re-driven order")
    time.sleep(3)  # more job runs: nothing else may arrive
    assert stored() == [(transient,)]
    with rabbitmq.channel() as channel:
        ids = []
        while True:
            method, properties, _ = channel.basic_get(BILLING_QUEUE.dead_letter_queue, auto_ack=False)
            if method is None:
                break
            ids.append(properties.message_id)
            if properties.message_id == permanent:
                channel.basic_ack(method.delivery_tag)  # taken out: the next run starts clean
    assert permanent in ids
