"""The transactional outbox, its relay and the idempotent inbox against the real test PostgreSQL and RabbitMQ.

Each test has an outbox table, an inbox table, an exchange and a saga queue of its own (``*_it_<random>``), so
it never meets the services of the e2e system or another test; all are dropped afterwards.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pika
import psycopg2
import pytest
from prometheus_client import REGISTRY

from common import claim_check
from common.config import DatabaseSettings, RabbitSettings
from common.db import ConnectionPool, transaction
from common.inbox import InboxTable, first_time
from common.outbox import NotInTransaction, OutboxTable, add_event
from common.outbox_relay import OutboxRelay
from contract import claim_check as CC
from contract import saga
from tests.moto_process import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def placed(order_id: str) -> saga.Event:
    """A valid order.placed event."""
    data = {"movie_id": 7, "quantity": 2, "total_amount": "19.98", "principal": {"sub": "alice", "name": None}}
    return saga.new_event(saga.ORDER_PLACED, order_id, data)


class Saga:
    """The test's outbox, exchange and queue: add events, run relays, read what the queue received."""

    def __init__(self, rabbitmq, postgres, pool: ConnectionPool):
        suffix = uuid.uuid4().hex[:10]
        self.table = OutboxTable(f"outbox_it_{suffix}")
        self.exchange = f"saga_it_{suffix}"
        self.queue = replace(saga.INVENTORY_EVENTS, name=f"saga_it_{suffix}.inventory")
        self.pool = pool
        self.received: list[tuple[pika.BasicProperties, bytes]] = []
        self._rabbitmq = rabbitmq
        self._postgres = postgres
        self.relays: list[OutboxRelay] = []
        postgres.query("billing_db", self.table.migration())

    def add(self, events: list[saga.Event]) -> list[saga.Event]:
        """Commit ``events`` in one transaction."""
        with self.pool.connection() as conn, transaction(conn) as cur:
            for event in events:
                add_event(cur, event, table=self.table)
        return events

    def relay(self, rabbit: RabbitSettings | None = None, **options: object) -> OutboxRelay:
        """Start a relay on the test's outbox (fast reconnects); stopped at the end of the test."""
        relay = OutboxRelay(
            self.pool,
            rabbit or RabbitSettings.from_env(),
            table=self.table,
            exchange=self.exchange,
            queues=(self.queue,),
            reconnect_initial=0.1,
            reconnect_max=1.0,
            **options,
        )
        relay.start()
        self.relays.append(relay)
        return relay

    def ids(self) -> list[str]:
        """Message ids of every message the queue received so far, in arrival order (duplicates kept)."""
        try:
            with self._rabbitmq.channel() as channel:
                while True:
                    method, properties, body = channel.basic_get(self.queue.name, auto_ack=True)
                    if method is None:
                        break
                    self.received.append((properties, body))
        except (pika.exceptions.AMQPError, OSError):
            pass  # the broker is restarting: read again later
        return [properties.message_id for properties, _ in self.received]

    def pending(self) -> int:
        """Rows left in the outbox."""
        return self._postgres.count_rows("billing_db", self.table.name)

    def close(self) -> None:
        for relay in self.relays:
            relay.stop(timeout=20)
        self.pool.close()
        self._postgres.query("billing_db", f"DROP TABLE IF EXISTS {self.table.name}")
        self._rabbitmq.delete(self.queue.name, self.queue.dead_letter_queue)
        with self._rabbitmq.channel() as channel:
            channel.exchange_delete(self.exchange)


@pytest.fixture
def saga_env(test_infrastructure, monkeypatch) -> None:
    """The broker and database settings of the test profile (as billing has them)."""
    for key, value in test_infrastructure.service_env("billing").items():
        if key.startswith(("DATABASE_", "RABBITMQ_", "AWS_")):
            monkeypatch.setenv(key, value)


@pytest.fixture
def outbox(saga_env, rabbitmq, postgres) -> Iterator[Saga]:
    """The test's outbox, exchange and queue (the queue is declared by the first relay)."""
    pool = ConnectionPool(DatabaseSettings.from_env("billing_db"), "outbox-tests")
    box = Saga(rabbitmq, postgres, pool)
    yield box
    box.close()


@pytest.fixture
def inbox(saga_env, postgres) -> Iterator[tuple[ConnectionPool, InboxTable]]:
    """An inbox table of the test's own, and a pool on billing_db."""
    table = InboxTable(f"inbox_it_{uuid.uuid4().hex[:10]}")
    postgres.query("billing_db", table.migration())
    pool = ConnectionPool(DatabaseSettings.from_env("billing_db"), "inbox-tests")
    yield pool, table
    pool.close()
    postgres.query("billing_db", f"DROP TABLE IF EXISTS {table.name}")


def gauge(name: str, table: OutboxTable) -> float | None:
    """The current value of an outbox gauge of ``table`` in this process."""
    return REGISTRY.get_sample_value(name, {"outbox": table.name})


# -- the outbox -------------------------------------------------------------------------------------------------
def test_rolled_back_event_is_never_published(outbox):
    """An event added in a transaction that rolls back leaves no row and is never published."""
    outbox.relay()
    with pytest.raises(RuntimeError), outbox.pool.connection() as conn, transaction(conn) as cur:
        add_event(cur, placed("rolled-back"), table=outbox.table)
        raise RuntimeError("the state change failed")
    [marker] = outbox.add([placed("committed")])
    wait_until(lambda: marker.event_id in outbox.ids(), 20, "the committed event")
    assert [json.loads(body)["order_id"] for _, body in outbox.received] == ["committed"]
    assert outbox.pending() == 0


def test_add_event_refuses_an_autocommit_cursor(outbox):
    """Outside a transaction the event would commit apart from its state change: add_event refuses."""
    with outbox.pool.connection() as conn, conn.cursor() as cur, pytest.raises(NotInTransaction):
        add_event(cur, placed("alone"), table=outbox.table)
    assert outbox.pending() == 0


def test_committed_events_are_published_in_order_as_the_envelope(outbox):
    """Committed events reach the bound queue in id order, each with message_id = event_id, type = routing key,
    persistent, and the envelope as body."""
    events = [event for batch in range(5) for event in outbox.add([placed(f"o-{batch}-{i}") for i in range(10)])]
    outbox.relay(batch_size=7)
    wait_until(lambda: len(outbox.ids()) >= 50, 20, "50 messages")
    assert outbox.ids() == [event.event_id for event in events]
    properties, body = outbox.received[0]
    assert (properties.type, properties.delivery_mode) == (saga.ORDER_PLACED, pika.DeliveryMode.Persistent.value)
    assert saga.parse_event(body, message_id=properties.message_id) == events[0]
    assert outbox.pending() == 0


def test_two_relays_publish_each_row_once(outbox):
    """Two relays draining one outbox (SKIP LOCKED) publish every event exactly once between them."""
    events = outbox.add([placed(f"o-{i}") for i in range(600)])
    outbox.relay(batch_size=10)
    outbox.relay(batch_size=10)
    wait_until(lambda: outbox.pending() == 0 and len(outbox.ids()) >= 600, 60, "600 messages")
    time.sleep(0.5)  # a second copy, if any, would have arrived by now
    ids = outbox.ids()
    assert len(ids) == 600
    assert set(ids) == {event.event_id for event in events}


def test_notify_wakes_the_relay(outbox):
    """A commit wakes the idle relay by NOTIFY: the event arrives long before its 60 s poll would find it."""
    outbox.relay(poll_interval=60)
    [first] = outbox.add([placed("first")])
    wait_until(lambda: first.event_id in outbox.ids(), 20, "the first event")
    [second] = outbox.add([placed("second")])  # the relay is idle in its 60 s wait now
    wait_until(lambda: second.event_id in outbox.ids(), 20, "the second event (woken by NOTIFY)")


def test_trace_and_request_headers_travel_with_the_event(outbox):
    """The request id current at add_event is stored with the row and published as the x-request-id header."""
    from common.log import request_id_var

    token = request_id_var.set("req-outbox-1")
    try:
        [event] = outbox.add([placed("with-request")])
    finally:
        request_id_var.reset(token)
    outbox.relay()
    wait_until(lambda: event.event_id in outbox.ids(), 20, "the event")
    assert outbox.received[0][0].headers["x-request-id"] == "req-outbox-1"


def test_relay_survives_a_broker_restart(outbox, test_infrastructure):
    """RabbitMQ restarts: the relay reconnects and every event, before and after, arrives (at least once)."""
    outbox.relay()
    before = outbox.add([placed(f"before-{i}") for i in range(20)])
    wait_until(lambda: len(set(outbox.ids())) == 20, 20, "the first 20 events")
    test_infrastructure.restart_rabbitmq()
    after = outbox.add([placed(f"after-{i}") for i in range(20)])
    wait_until(lambda: outbox.pending() == 0, 60, "the outbox to drain after the restart")
    wait_until(lambda: set(outbox.ids()) == {e.event_id for e in before + after}, 20, "all 40 events")


def test_relay_survives_a_database_restart(outbox, test_infrastructure):
    """PostgreSQL stops while a backlog is relayed: nothing is lost; once it is back the rest is published."""
    events = outbox.add([placed(f"o-{i}") for i in range(300)])
    outbox.relay(batch_size=5)
    test_infrastructure.stop_service("postgres")
    try:
        time.sleep(1)
    finally:
        test_infrastructure.start_service("postgres")
    later = outbox.add([placed("after-restart")])
    wait_until(lambda: outbox.pending() == 0, 60, "the outbox to drain")
    wait_until(lambda: set(outbox.ids()) == {e.event_id for e in events + later}, 20, "all 301 events")


def test_gauges_show_events_stuck_while_the_broker_is_away(outbox):
    """With no broker the relay still measures: 3 pending rows, a growing age; once published both drop to 0."""
    outbox.add([placed(f"stuck-{i}") for i in range(3)])
    unreachable = replace(RabbitSettings.from_env(), url=f"amqp://127.0.0.1:{free_port()}/", connect_timeout=1)
    stuck = outbox.relay(rabbit=unreachable)
    wait_until(lambda: gauge("outbox_pending_events", outbox.table) == 3, 20, "the pending gauge at 3")
    wait_until(lambda: gauge("outbox_oldest_pending_age_seconds", outbox.table) > 0, 20, "a positive age")
    wait_until(lambda: stuck.last_problem.startswith("broker"), 20, "the relay to report the broker away")
    stuck.stop()
    outbox.relay()
    wait_until(lambda: len(outbox.ids()) == 3, 20, "the three events")
    wait_until(lambda: gauge("outbox_pending_events", outbox.table) == 0, 20, "the pending gauge at 0")
    assert gauge("outbox_oldest_pending_age_seconds", outbox.table) == 0


# -- the inbox --------------------------------------------------------------------------------------------------
def record(pool: ConnectionPool, table: InboxTable, event_id: str, consumer: str = "inventory.saga") -> bool:
    """first_time in a committed transaction of its own."""
    with pool.connection() as conn, transaction(conn) as cur:
        return first_time(cur, event_id, consumer, table=table)


def test_first_time_is_true_once_then_false(inbox):
    """The first delivery of an event id is new; every later one is a replay."""
    pool, table = inbox
    assert [record(pool, table, "e-1"), record(pool, table, "e-1"), record(pool, table, "e-1")] == [True, False, False]


def test_first_time_is_per_consumer(inbox):
    """Two consumers of one event each apply it once."""
    pool, table = inbox
    assert record(pool, table, "e-2", "billing.saga") and record(pool, table, "e-2", "inventory.saga")


def test_first_time_rolled_back_with_its_transaction(inbox):
    """A consumer whose transaction rolled back (a crash mid-handler) has not applied the event: next time is new."""
    pool, table = inbox
    with pytest.raises(psycopg2.errors.DivisionByZero), pool.connection() as conn, transaction(conn) as cur:
        assert first_time(cur, "e-3", "inventory.saga", table=table)
        cur.execute("SELECT 1 / 0")  # the state change fails
    assert record(pool, table, "e-3")


def test_first_time_refuses_an_autocommit_cursor(inbox):
    """Outside a transaction the record would commit apart from the state change: first_time refuses."""
    pool, table = inbox
    with pool.connection() as conn, conn.cursor() as cur, pytest.raises(NotInTransaction):
        first_time(cur, "e-4", "inventory.saga", table=table)


# -- the claim check ----------------------------------------------------------------------------------------------
def claim_check_bucket(s3_emulator: str) -> str:
    """A fresh bucket in the test's moto server for claim checks; its name."""
    name = f"claims-it-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=s3_emulator, region_name="eu-west-1")
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return name


def test_a_100_kib_event_is_published_as_a_claim_check(outbox, s3_emulator):
    """An event over 64 KiB is stored in S3 by the relay; the message carries only the reference, with the
    claim-check header, and the stored object is the event's exact body."""
    bucket = claim_check_bucket(s3_emulator)
    big = saga.new_event(saga.ORDER_CANCELLED, "big-1", {"movie_id": 7, "quantity": 1, "reason": "r",
                                                          "note": "x" * 100 * 1024})
    small = placed("small-1")
    outbox.add([big, small])
    outbox.relay(claim_check_store=claim_check.s3_store(bucket, endpoint_url=s3_emulator, region="eu-west-1"))
    wait_until(lambda: len(outbox.ids()) >= 2, 20, "both messages")
    (big_properties, wire), (small_properties, small_body) = outbox.received
    assert len(wire) < 1024 and big_properties.headers[CC.HEADER] == CC.HEADER_VALUE
    fetch = claim_check.s3_fetch(endpoint_url=s3_emulator, region="eu-west-1")
    assert claim_check.unwrap(wire, big_properties.headers, fetch) == big.body()
    assert CC.HEADER not in (small_properties.headers or {}) and small_body == small.body()


def test_the_relay_keeps_the_event_while_s3_is_away(outbox):
    """S3 unreachable: the large event is not published and its row stays for the next attempt (nothing lost)."""
    big = saga.new_event(saga.ORDER_CANCELLED, "big-2", {"movie_id": 7, "quantity": 1, "reason": "r",
                                                          "note": "x" * 100 * 1024})
    outbox.add([big])
    nowhere = f"http://127.0.0.1:{free_port()}"
    relay = outbox.relay(claim_check_store=claim_check.s3_store("claims", endpoint_url=nowhere, region="eu-west-1"))
    wait_until(lambda: relay.last_problem.startswith("claim-check storage"), 30, "the storage failure")
    assert outbox.ids() == [] and outbox.pending() == 1
