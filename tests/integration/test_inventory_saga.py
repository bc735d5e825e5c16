"""Inventory's part of the purchase saga against the real test PostgreSQL (movies_db) and RabbitMQ: reservations
on order.placed, releases on order.cancelled, tombstones, concurrency, the events left in the outbox and their
relay.

Events are built with ``contract.saga.new_event`` and published to an exchange and a saga queue of the test's
own, consumed by ``common.saga_consumer.SagaConsumer`` with inventory's real handler
(``inventory.reservations.apply``); see ``inventory_saga_support`` for the rig and why everything is the test's own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pika
import pytest
from prometheus_client import REGISTRY

from common.config import RabbitSettings
from common.db import ConnectionPool, Schema
from common.outbox_relay import OutboxRelay
from contract import saga
from contract.services import INVENTORY
from inventory import SAGA, create_app, reservations, saga_consumer_of
from inventory.db import MIGRATIONS
from tests.integration.inventory_saga_support import PRINCIPAL, Rig, cancelled, order_id, placed, wait_until

pytestmark = pytest.mark.integration

#: A schema of its own in movies_db for the migration test (an empty database), never the shared tables.
SCRATCH_SCHEMA = "inventory_saga_migration_check"


@pytest.fixture
def rig(inventory_settings, postgres, rabbitmq) -> Iterator[Rig]:
    """inventory's tables, empty, and the test's own saga exchange and queue (deleted afterwards)."""
    made = Rig(inventory_settings, postgres, rabbitmq)
    yield made
    made.close()


# -- reserving --------------------------------------------------------------------------------------------------

def test_a_placement_within_stock_is_reserved_and_stock_reserved_is_emitted(rig):
    """2 of a movie with stock 5 at 9.99 for 19.98: stock 3, a 'reserved' row at 9.99, and stock.reserved (movie,
    quantity, unit_price "9.99", title, and the order's principal echoed for billing's shard) for the order in the
    outbox."""
    rig.start_consumers()
    movie = rig.movie(stock=5, price="9.99", title="Solaris")
    order = order_id()
    rig.deliver(placed(order, movie, 2, "19.98"))
    assert rig.stock(movie) == 3
    assert rig.reservation(order) == ("reserved", movie, 2, Decimal("9.99"), None)
    [event] = rig.outbox()
    assert (event.type, event.order_id) == (saga.STOCK_RESERVED, order)
    assert event.data == {"movie_id": movie, "quantity": 2, "unit_price": "9.99", "title": "Solaris",
                          "principal": PRINCIPAL}


def test_more_than_the_stock_is_rejected_saying_how_many_are_left(rig):
    """3 wanted of a movie with stock 2: nothing taken, a 'rejected' row, stock.rejected saying "only 2 in stock"."""
    rig.start_consumers()
    movie = rig.movie(stock=2, price="5.00")
    order = order_id()
    rig.deliver(placed(order, movie, 3, "15.00"))
    assert rig.stock(movie) == 2
    status, *_, reason = rig.reservation(order)
    assert status == "rejected" and "only 2 in stock" in reason
    [event] = rig.outbox()
    assert (event.type, event.data["movie_id"], event.data["quantity"]) == (saga.STOCK_REJECTED, movie, 3)
    assert "only 2 in stock" in event.data["reason"]


@pytest.mark.parametrize(("stock", "price"), [(None, "9.99"), (5, None)], ids=["no-stock", "no-price"])
def test_a_movie_not_for_sale_is_rejected(rig, stock, price):
    """A movie without stock or without price is not for sale: rejected with that reason, nothing changes."""
    rig.start_consumers()
    movie = rig.movie(stock=stock, price=price)
    rig.deliver(placed(order_id(), movie, 1, "9.99"))
    assert rig.stock(movie) == stock
    [event] = rig.outbox()
    assert event.type == saga.STOCK_REJECTED
    assert event.data["reason"] == f"movie {movie} is not for sale"


def test_an_unknown_movie_is_rejected(rig):
    """A placement for a movie id that does not exist is rejected naming the id."""
    rig.start_consumers()
    order = order_id()
    rig.deliver(placed(order, 424242, 1, "1.00"))
    [event] = rig.outbox()
    assert (event.type, event.data["reason"]) == (saga.STOCK_REJECTED, "movie 424242 does not exist")
    assert rig.reservation(order)[0] == "rejected"


def test_a_total_that_is_not_price_times_quantity_is_rejected_naming_both(rig):
    """total_amount 20.00 for 2 at 9.99: rejected with a reason naming the total and the price; stock untouched."""
    rig.start_consumers()
    movie = rig.movie(stock=5, price="9.99")
    rig.deliver(placed(order_id(), movie, 2, "20.00"))
    assert rig.stock(movie) == 5
    [event] = rig.outbox()
    assert event.type == saga.STOCK_REJECTED
    assert "20.00" in event.data["reason"] and "9.99" in event.data["reason"]


def test_twenty_concurrent_reservations_of_one_on_stock_ten_reserve_exactly_ten(rig):
    """20 transactions reserving 1 each of a movie with stock 10, started at the same moment: exactly 10 are
    reserved and 10 rejected, the stock ends at 0 (never below), and the outbox holds one event per order."""
    movie = rig.movie(stock=10, price="3.50")
    events = [placed(order_id(), movie, 1, "3.50") for _ in range(20)]
    start = threading.Barrier(len(events))
    errors: list[BaseException] = []

    def reserve(event: saga.Event) -> None:
        start.wait()
        try:
            rig.apply(event)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=reserve, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert rig.stock(movie) == 0
    statuses = rig.postgres.query("movies_db", "SELECT status, count(*) FROM reservations GROUP BY status")
    assert dict(statuses) == {"reserved": 10, "rejected": 10}
    emitted = [event.type for event in rig.outbox()]
    assert sorted(emitted) == [saga.STOCK_REJECTED] * 10 + [saga.STOCK_RESERVED] * 10


def test_competing_consumers_never_oversell(rig):
    """Three consumers of one queue (three workers) and 12 placements of 1 on stock 8: 8 reserved, stock 0."""
    rig.start_consumers(3)
    movie = rig.movie(stock=8, price="1.00")
    rig.deliver(*[placed(order_id(), movie, 1, "1.00") for _ in range(12)])
    assert rig.stock(movie) == 0
    statuses = rig.postgres.query("movies_db", "SELECT status, count(*) FROM reservations GROUP BY status")
    assert dict(statuses) == {"reserved": 8, "rejected": 4}


def test_a_replayed_placement_reserves_once(rig):
    """The same order.placed delivered twice takes the stock once and emits one stock.reserved."""
    rig.start_consumers()
    movie = rig.movie(stock=5, price="2.00")
    event = placed(order_id(), movie, 2, "4.00")
    rig.publish(event)
    rig.deliver(event)
    later = placed(order_id(), movie, 1, "2.00")  # published after both copies: applied once both were handled
    rig.deliver(later)
    assert rig.stock(movie) == 2
    assert [e.order_id for e in rig.outbox()] == [event.order_id, later.order_id]


def test_a_second_placement_of_the_same_order_reserves_nothing_more(rig):
    """A new order.placed (another event id) for an order already reserved changes nothing and emits nothing."""
    movie = rig.movie(stock=5, price="2.00")
    order = order_id()
    rig.apply(placed(order, movie, 2, "4.00"))
    rig.apply(placed(order, movie, 2, "4.00"))
    assert rig.stock(movie) == 3
    assert len(rig.outbox()) == 1


# -- releasing --------------------------------------------------------------------------------------------------

def test_a_cancel_releases_the_reserved_quantity_once(rig):
    """Reserve 3 of 10, cancel: stock back to 10 and the row 'released'; the same cancel replayed and a second
    cancel event for the order change nothing more."""
    rig.start_consumers()
    movie = rig.movie(stock=10, price="4.00")
    order = order_id()
    rig.deliver(placed(order, movie, 3, "12.00"))
    assert rig.stock(movie) == 7
    cancel = cancelled(order, movie, 3)
    rig.deliver(cancel)
    assert rig.stock(movie) == 10
    assert rig.reservation(order)[0] == "released"
    rig.publish(cancel)
    rig.deliver(cancelled(order, movie, 3))
    assert rig.stock(movie) == 10
    assert rig.reservation(order)[0] == "released"


def test_a_cancel_releases_what_was_reserved_not_what_the_cancel_says(rig):
    """The quantity released is the reservation's (2), whatever quantity the cancel event carries (5)."""
    movie = rig.movie(stock=4, price="1.00")
    order = order_id()
    rig.apply(placed(order, movie, 2, "2.00"))
    rig.apply(cancelled(order, movie, 5))
    assert rig.stock(movie) == 4


def test_cancelling_a_rejected_order_gives_nothing_back(rig):
    """A cancel for an order whose placement was rejected (nothing taken) leaves stock and row unchanged."""
    movie = rig.movie(stock=1, price="1.00")
    order = order_id()
    rig.apply(placed(order, movie, 2, "2.00"))
    rig.apply(cancelled(order, movie, 2))
    assert rig.stock(movie) == 1
    assert rig.reservation(order)[0] == "rejected"


def test_a_cancel_before_the_placement_leaves_a_tombstone_and_the_placement_is_rejected(rig):
    """order.cancelled first: a 'cancelled-before-placed' row and no stock change; the late order.placed is
    then rejected (stock.rejected, row 'rejected') instead of reserving stock nobody will pay for."""
    rig.start_consumers()
    movie = rig.movie(stock=5, price="2.50")
    order = order_id()
    rig.deliver(cancelled(order, movie, 2))
    assert rig.reservation(order)[0] == "cancelled-before-placed"
    assert rig.outbox() == []
    rig.deliver(placed(order, movie, 2, "5.00"))
    assert rig.stock(movie) == 5
    assert rig.reservation(order)[0] == "rejected"
    [event] = rig.outbox()
    assert event.type == saga.STOCK_REJECTED and "cancelled before it was placed" in event.data["reason"]


def test_an_event_inventory_does_not_consume_is_refused(rig):
    """A stock.reserved handed to inventory's handler raises (the consumer dead-letters it); nothing changes."""
    event = saga.new_event(saga.STOCK_RESERVED, order_id(), {"movie_id": 1, "quantity": 1, "unit_price": "1.00"})
    with pytest.raises(reservations.UnexpectedEvent):
        rig.apply(event)
    assert not rig.processed(event)


def test_each_decision_is_counted_by_outcome(rig):
    """inventory_reservations_total counts one reserved, one rejected, one released and one tombstone for
    those four decisions."""
    outcomes = ("reserved", "rejected", "released", "tombstone")

    def counts() -> dict[str, float]:
        return {o: REGISTRY.get_sample_value("inventory_reservations_total", {"outcome": o}) or 0.0 for o in outcomes}

    before = counts()
    movie = rig.movie(stock=1, price="1.00")
    order = order_id()
    rig.apply(placed(order, movie, 1, "1.00"))
    rig.apply(placed(order_id(), movie, 1, "1.00"))
    rig.apply(cancelled(order, movie, 1))
    rig.apply(cancelled(order_id(), movie, 1))
    after = counts()
    assert {o: after[o] - before[o] for o in outcomes} == dict.fromkeys(outcomes, 1.0)


# -- relaying ---------------------------------------------------------------------------------------------------

def test_the_relay_publishes_the_emitted_event_to_the_exchange(rig):
    """With an outbox relay running, the stock.reserved of a reservation reaches a queue bound to the exchange
    (message id = event id, type = routing key) and leaves the outbox."""
    movie = rig.movie(stock=2, price="7.00", title="Mirror")
    order = order_id()
    listener = f"{rig.exchange}.listener"
    with rig.rabbitmq.channel() as channel:
        channel.exchange_declare(rig.exchange, exchange_type=saga.EXCHANGE_TYPE, durable=True)
        channel.queue_declare(listener, durable=True)
        channel.queue_bind(listener, rig.exchange, routing_key="stock.*")
    try:
        rig.apply(placed(order, movie, 1, "7.00"))
        relay = OutboxRelay(
            rig.pool, RabbitSettings.from_env(), table=rig.outbox_table, exchange=rig.exchange, queues=()
        )
        rig.relays.append(relay)
        relay.start()
        wait_until(lambda: rig.rabbitmq.message_count(listener) == 1, 20, "the relayed event")
        with rig.rabbitmq.channel() as channel:
            method, properties, body = channel.basic_get(listener, auto_ack=True)
        event = saga.parse_event(body, message_id=properties.message_id, routing_key=method.routing_key)
        assert (event.type, event.order_id, event.data["title"]) == (saga.STOCK_RESERVED, order, "Mirror")
        wait_until(lambda: rig.outbox() == [], 10, "the outbox to empty")
    finally:
        rig.rabbitmq.delete(listener)


# -- the app ----------------------------------------------------------------------------------------------------

def test_inventory_stays_ready_without_the_broker_and_says_the_saga_is_not_consuming(inventory_settings, rig):
    """RabbitMQ unreachable: /ready still answers 200 (movies are served) and its body reports the saga consumer
    as not consuming, with the problem."""
    unreachable = replace(RabbitSettings.from_env(), url="amqp://127.0.0.1:9/", connect_timeout=1.0)
    app = create_app(inventory_settings, rabbit=unreachable)
    consumer = SAGA.of(app).consumer
    consumer.start()
    try:
        wait_until(lambda: consumer.last_problem not in ("", "not started"), 20, "the consumer to fail to connect")
        response = app.test_client().get("/ready")
        assert response.status_code == 200
        state = response.get_json()["saga"]
        assert state["consuming"] is False and state["consumer_problem"]
        assert app.test_client().get("/api/movies").status_code == 200
    finally:
        consumer.stop(timeout=20)



def test_a_consumer_on_an_unmigrated_database_migrates_before_it_applies_anything(
    inventory_settings, postgres, rabbitmq, monkeypatch
):
    """A worker whose database had no saga tables yet (it was down when the worker started): the consumer
    inventory builds (``saga_consumer_of``) migrates before it consumes, so the first event is applied (a rejected
    reservation for a movie of the empty catalogue), not dead-lettered for a missing table."""
    postgres.query("movies_db", f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
    postgres.query("movies_db", f"CREATE SCHEMA {SCRATCH_SCHEMA}")
    # libpq applies PGOPTIONS to every new connection: this test's pool sees only the empty scratch schema.
    monkeypatch.setenv("PGOPTIONS", f"-c search_path={SCRATCH_SCHEMA}")
    suffix = uuid.uuid4().hex[:10]
    exchange, queue = f"inventory_saga_it_{suffix}", replace(saga.INVENTORY_EVENTS, name=f"inventory_saga_it_{suffix}")
    pool = ConnectionPool(inventory_settings, "saga-migration-check")
    consumer = saga_consumer_of(
        pool, Schema(pool, INVENTORY.name, MIGRATIONS), RabbitSettings.from_env(), queue=queue, exchange=exchange
    )
    order = order_id()
    try:
        consumer.start()
        wait_until(lambda: consumer.is_consuming, 30, "the consumer to attach")
        event = placed(order, 1, 1, "1.00")
        with rabbitmq.channel() as channel:
            channel.confirm_delivery()
            properties = pika.BasicProperties(message_id=event.event_id, delivery_mode=pika.DeliveryMode.Persistent)
            channel.basic_publish(exchange, event.routing_key, event.body(), properties, mandatory=True)
        status = f"SELECT status FROM {SCRATCH_SCHEMA}.reservations WHERE order_id = %s"  # noqa: S608
        wait_until(lambda: postgres.query("movies_db", status, (order,)) == [("rejected",)], 20, "the rejection")
        assert rabbitmq.message_count(queue.dead_letter_queue) == 0
    finally:
        consumer.stop(timeout=20)
        pool.close()
        rabbitmq.delete(queue.name, queue.dead_letter_queue)
        with rabbitmq.channel() as channel:
            channel.exchange_delete(exchange)
        monkeypatch.delenv("PGOPTIONS")
        postgres.query("movies_db", f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
