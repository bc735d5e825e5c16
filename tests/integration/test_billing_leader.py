# ruff: noqa: F811 - the fixtures of test_billing_consumer are imported, then named as test arguments
"""Billing's leader election and the leader's jobs against the real test PostgreSQL and RabbitMQ (no mocks).

Election tests use a lock of their own (not billing's), so the e2e system's billing can never interfere.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pika
import pytest

from billing.aggregates import aggregate_minutes
from billing.deadletters import list_dead_letters
from billing.jobs import redrive_transient
from billing.leader import SIT_OUT_ROUNDS, LeaderElection, failover_budget
from billing.store import OrderStore
from common.config import DatabaseSettings, RabbitSettings
from common.db import ConnectionPool
from tests.integration.test_billing_consumer import (  # noqa: F401 - fixtures
    VALID,
    billing_env,
    queue,
    start_consumer,
    wait_until,
)
from tests.integration.test_queue_migration import crash_on_next_message

pytestmark = pytest.mark.integration

CHECK = 0.2  # seconds between election rounds in these tests


@pytest.fixture
def elections(billing_env):
    """Make LeaderElections on a lock of this test's own; all are stopped afterwards."""
    lock = (0x7465_7374, uuid.uuid4().int % 2**31)  # "test", random
    made: list[LeaderElection] = []

    def make() -> LeaderElection:
        election = LeaderElection(DatabaseSettings.from_env("billing_db"), "billing-tests", CHECK, lock=lock)
        made.append(election)
        return election

    yield make
    for election in made:
        election.stop()


# -- election -----------------------------------------------------------------------------------------------
def test_of_two_elections_exactly_one_leads(elections):
    """Two campaigning processes: one takes the lock, the other stays a follower however often it tries."""
    first, second = elections(), elections()
    assert first.run_once() is True
    assert [second.run_once() for _ in range(3)] == [False, False, False]
    assert first.run_once() is True, "the leader keeps its lock from round to round"


def test_follower_leads_once_the_leader_steps_down(elections):
    """A leader that stops (gracefully) frees the lock at once: the follower's next round wins it."""
    first, second = elections(), elections()
    first.run_once()
    second.run_once()
    first.stop()
    assert (first.is_leader, second.run_once()) == (False, True)


def test_terminated_leader_session_hands_over_within_the_budget(elections, postgres):
    """The leader's backend is terminated (as when PostgreSQL ends a dead client's session): the leader steps
    down at its next check and the follower leads within the failover budget."""
    first, second = elections(), elections()
    first.start()
    wait_until(lambda: first.is_leader, 5, "the first election to lead")
    second.start()
    leader_pid = postgres.query(
        "billing_db",
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s",
        first._lock,
    )[0][0]
    postgres.query("billing_db", "SELECT pg_terminate_backend(%s)", (leader_pid,))
    began = time.monotonic()
    wait_until(lambda: second.is_leader, failover_budget(CHECK)[2], "the follower to lead")
    print(f"\nnew leader after {time.monotonic() - began:.2f} s")
    wait_until(lambda: not first.is_leader, 5, "the old leader to step down")
    assert not (first.is_leader and second.is_leader)


def test_a_deposed_leader_sits_out_so_a_follower_takes_over(elections, postgres):
    """A leader whose session was terminated does not win the freed lock back at its next round (it would race
    the followers for it): it sits out SIT_OUT_ROUNDS rounds, and a follower that tries meanwhile leads."""
    first, second = elections(), elections()
    assert first.run_once() is True
    held = "FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s"
    (leader_pid,) = postgres.query("billing_db", f"SELECT pid {held}", first._lock)[0]
    postgres.query("billing_db", "SELECT pg_terminate_backend(%s)", (leader_pid,))
    wait_until(lambda: not postgres.query("billing_db", f"SELECT pid {held}", first._lock), 5, "the lock to be freed")
    assert first.run_once() is False, "its check fails: it steps down"
    assert [first.run_once() for _ in range(SIT_OUT_ROUNDS)] == [False] * SIT_OUT_ROUNDS
    assert second.run_once() is True
    assert first.run_once() is False


def test_follower_without_a_database_stays_follower(billing_env, monkeypatch):
    """A follower that cannot reach PostgreSQL stays a follower and does not raise."""
    monkeypatch.setenv("DATABASE_PORT", "1")  # nothing listens there
    election = LeaderElection(DatabaseSettings.from_env("billing_db"), "billing-tests", CHECK)
    assert election.run_once() is False


# -- re-drive -----------------------------------------------------------------------------------------------
def broker_dead_letter(queue) -> str:
    """Publish an order and crash on it until the broker dead-letters it (delivery limit); return its id."""
    [message_id] = queue.publish([VALID])
    while crash_on_next_message(queue._rabbitmq, queue.name):
        pass
    wait_until(lambda: queue.dead_letter_count() == 1, 10, "the broker to dead-letter the message")
    return message_id


def test_transient_dead_letter_is_redriven_and_stored_once(queue, start_consumer):
    """A message the broker dead-lettered past the delivery limit goes back to its queue with its message id
    and an attempt count, and is stored exactly once."""
    message_id = broker_dead_letter(queue)
    assert redrive_transient(RabbitSettings.from_env(), max_attempts=3) == 1
    assert (queue.dead_letter_count(), queue.ready()) == (0, 1)
    start_consumer()
    wait_until(lambda: queue.row_count() == 1, 10, "the re-driven row")
    assert queue.rows()[0][3] == message_id


def test_redrive_attempts_are_bounded(queue, store, postgres):
    """A message that keeps crashing its consumer is re-driven at most max_attempts times, then stays in the
    dead-letter queue with the count visible, and is recorded as rejected (its order status stops saying
    queued) once, with the broker's kind."""
    message_id = broker_dead_letter(queue)
    settings = RabbitSettings.from_env()
    moved = []
    for _ in range(4):
        moved.append(redrive_transient(settings, max_attempts=2, store=store))
        while crash_on_next_message(queue._rabbitmq, queue.name):
            pass
        wait_until(lambda: queue.dead_letter_count() == 1, 10, "the message back in the dead-letter queue")
    assert moved == [1, 1, 0, 0]
    [letter] = list_dead_letters(settings, limit=10)
    assert (letter["message_id"], letter["kind"], letter["redrive_attempts"]) == (message_id, "delivery_limit", 2)
    rejected = postgres.query("billing_db", "SELECT kind FROM rejected_orders WHERE message_id = %s", (message_id,))
    assert [tuple(row) for row in rejected] == [("delivery_limit",)]


def test_permanent_dead_letter_is_not_redriven(queue, start_consumer):
    """A message billing dead-lettered itself (invalid data) stays in the dead-letter queue."""
    consumer = start_consumer()
    queue.publish([{**VALID, "total_amount": "-1"}])
    wait_until(lambda: queue.dead_letter_count() == 1, 10, "billing to dead-letter the invalid order")
    consumer.stop()
    assert redrive_transient(RabbitSettings.from_env(), max_attempts=3) == 0
    assert (queue.dead_letter_count(), queue.ready()) == (1, 0)


def test_redrive_reads_the_broker_death_header(queue, rabbitmq):
    """A dead letter with a realistic x-death (delivery_limit) and no billing reason is re-driven; one with
    another broker reason (say, rejected) is not."""
    queue.publish([])  # declares the queue and its dead-letter queue
    with rabbitmq.channel() as channel:
        for reason in ("delivery_limit", "rejected"):
            death = {"queue": queue.name, "reason": reason, "count": 1, "exchange": "", "time": datetime.now(UTC)}
            properties = pika.BasicProperties(
                message_id=f"{queue.name}-{reason}", delivery_mode=2, headers={"x-death": [death]}
            )
            channel.basic_publish("", queue.dlq, json.dumps(VALID).encode(), properties)
    assert redrive_transient(RabbitSettings.from_env(), max_attempts=3) == 1
    [(properties, _body)] = queue.dead_letters()
    assert properties.message_id == f"{queue.name}-rejected"


# -- aggregates ---------------------------------------------------------------------------------------------
@pytest.fixture
def store(billing_env, postgres, test_infrastructure):
    """An OrderStore on billing_db whose order_minutes start empty. The test system's billing is stopped
    first (the next e2e test starts it again): its leader would aggregate the same table meanwhile."""
    for replica in test_infrastructure.replicas("billing"):
        replica.stop()
    store = OrderStore(ConnectionPool(DatabaseSettings.from_env("billing_db"), "billing-tests"))
    store.check()
    postgres.truncate("billing_db", "order_minutes")
    yield store
    store.close()


def insert_order(postgres, at: datetime, amount: str) -> None:
    """One order row stamped ``at`` (as if stored then)."""
    postgres.query(
        "billing_db",
        "INSERT INTO orders (user_id, number_of_items, total_amount, message_id, created_at)"
        " VALUES ('agg', 1, %s, %s, %s)",
        (amount, f"agg-{uuid.uuid4().hex}", at),
    )


def test_closed_minutes_are_written_once_with_counts_and_revenue(store, postgres):
    """Orders of two past minutes become two rows with their count and sum; a second run writes nothing."""
    postgres.truncate("billing_db", "orders")
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    for at, amount in ((base, "10"), (base + timedelta(seconds=30), "5.50"), (base + timedelta(minutes=2), "1")):
        insert_order(postgres, at, amount)
    written = aggregate_minutes(store)
    assert [(m.minute, m.orders, m.revenue) for m in written] == [
        (base, 2, Decimal("15.50")),
        (base + timedelta(minutes=2), 1, Decimal("1.00")),
    ]
    assert aggregate_minutes(store) == []
    assert postgres.query("billing_db", "SELECT count(*), max(repeats) FROM order_minutes") == [(2, 0)]


def test_open_minute_is_not_written(store, postgres):
    """Orders of the current minute are left until the minute is closed."""
    postgres.truncate("billing_db", "orders")
    insert_order(postgres, datetime.now(UTC), "3")
    assert aggregate_minutes(store) == []
