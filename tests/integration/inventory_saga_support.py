"""The inventory saga tests' rig: movies_db through inventory's schema, an exchange, a saga queue and an outbox
table of the test's own, consumers and relays on them, and builders of the events billing emits.

Own exchange, queue and outbox table: the services of an e2e system (whose inventory relays movies_db's
``outbox``), and queues other tests left on ``movies.events``, never see these events. The other tables are
inventory's own (movies, reservations, processed_events), emptied when a rig is made.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import replace

import pika

from common.config import RabbitSettings
from common.db import ConnectionPool, Schema, transaction
from common.inbox import first_time
from common.outbox import OutboxTable
from common.outbox_relay import OutboxRelay
from common.saga_consumer import SagaConsumer
from contract import saga
from contract.services import INVENTORY
from inventory import reservations
from inventory.db import MIGRATIONS
from tests.waiting import wait_until

TABLES = ("movies", "reservations", "processed_events")
PRINCIPAL = {"sub": "alice", "name": "Alice"}


def placed(order_id: str, movie_id: int, quantity: int, total: str) -> saga.Event:
    """An order.placed event as billing emits it."""
    data = {"movie_id": movie_id, "quantity": quantity, "total_amount": total, "principal": PRINCIPAL}
    return saga.new_event(saga.ORDER_PLACED, order_id, data)


def cancelled(order_id: str, movie_id: int, quantity: int) -> saga.Event:
    """An order.cancelled event as billing emits it (the compensation)."""
    data = {"movie_id": movie_id, "quantity": quantity, "reason": "payment timed out"}
    return saga.new_event(saga.ORDER_CANCELLED, order_id, data)


def order_id() -> str:
    """A fresh order id shaped like the gateway's (64 hex digits)."""
    return uuid.uuid4().hex * 2


class Rig:
    """movies_db through inventory's schema, the test's exchange and saga queue, and consumers/relays on them."""

    def __init__(self, settings, postgres, rabbitmq):
        suffix = uuid.uuid4().hex[:10]
        self.exchange = f"inventory_saga_it_{suffix}"
        self.queue = replace(saga.INVENTORY_EVENTS, name=f"inventory_saga_it_{suffix}")
        self.outbox_table = OutboxTable(f"outbox_it_{suffix}")
        self.handler = functools.partial(reservations.apply, outbox=self.outbox_table)
        self.postgres, self.rabbitmq = postgres, rabbitmq
        # Room for the concurrency test's 20 transactions at once.
        self.pool = ConnectionPool(replace(settings, pool_size=24), "inventory-saga-tests", acquire_timeout=30)
        Schema(self.pool, INVENTORY.name, MIGRATIONS).ensure()
        postgres.truncate("movies_db", *TABLES)
        postgres.query("movies_db", self.outbox_table.migration())
        self.consumers: list[SagaConsumer] = []
        self.relays: list[OutboxRelay] = []

    # -- data -------------------------------------------------------------------------------------------------
    def movie(self, stock: int | None, price: str | None, title: str = "Stalker") -> int:
        """Insert a movie; its id."""
        [(movie_id,)] = self.postgres.query(
            "movies_db", "INSERT INTO movies (title, stock, price) VALUES (%s, %s, %s) RETURNING id",
            (title, stock, price),
        )
        return movie_id

    def stock(self, movie_id: int) -> int | None:
        return self.postgres.query("movies_db", "SELECT stock FROM movies WHERE id = %s", (movie_id,))[0][0]

    def reservation(self, order: str) -> tuple | None:
        """(status, movie_id, quantity, unit_price, reason) of the order's row, or None."""
        rows = self.postgres.query(
            "movies_db",
            "SELECT status, movie_id, quantity, unit_price, reason FROM reservations WHERE order_id = %s",
            (order,),
        )
        return rows[0] if rows else None

    def outbox(self) -> list[saga.Event]:
        """The events waiting in inventory's outbox, oldest first."""
        rows = self.postgres.query(
            "movies_db", f"SELECT routing_key, body FROM {self.outbox_table.name} ORDER BY id"  # noqa: S608
        )
        return [saga.parse_event(bytes(body), routing_key=key) for key, body in rows]

    def processed(self, event: saga.Event) -> bool:
        """True once the consumer committed ``event`` (its inbox row commits with the state change)."""
        return bool(self.postgres.query(
            "movies_db", "SELECT 1 FROM processed_events WHERE consumer = %s AND event_id = %s",
            (self.queue.name, event.event_id),
        ))

    # -- applying events --------------------------------------------------------------------------------------
    def apply(self, event: saga.Event) -> None:
        """Apply ``event`` the way the consumer does (inbox + handler in one transaction), without the broker."""
        with self.pool.connection() as conn, transaction(conn) as cur:
            if first_time(cur, event.event_id, self.queue.name):
                self.handler(cur, event)

    def start_consumers(self, count: int = 1) -> None:
        """Start ``count`` competing consumers of the test queue with inventory's handler."""
        for _ in range(count):
            consumer = SagaConsumer(
                self.pool, RabbitSettings.from_env(), self.queue, self.handler, exchange=self.exchange
            )
            consumer.start()
            self.consumers.append(consumer)
        wait_until(lambda: all(c.is_consuming for c in self.consumers), 20, "the consumers to attach")

    def publish(self, *events: saga.Event) -> None:
        """Publish the events to the test exchange (persistent, confirmed), routed by their type."""
        with self.rabbitmq.channel() as channel:
            channel.confirm_delivery()
            for event in events:
                properties = pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent, message_id=event.event_id, type=event.type,
                    content_type="application/json",
                )
                channel.basic_publish(self.exchange, event.routing_key, event.body(), properties, mandatory=True)

    def deliver(self, *events: saga.Event) -> None:
        """Publish the events and wait until the consumers committed every one (replays: the last copy)."""
        self.publish(*events)
        for event in events:
            wait_until(lambda event=event: self.processed(event), 20, f"{event.type} {event.event_id} applied")

    def close(self) -> None:
        for worker in [*self.consumers, *self.relays]:
            worker.stop(timeout=20)
        self.pool.close()
        self.postgres.query("movies_db", f"DROP TABLE IF EXISTS {self.outbox_table.name}")
        self.rabbitmq.delete(self.queue.name, self.queue.dead_letter_queue)
        with self.rabbitmq.channel() as channel:
            channel.exchange_delete(self.exchange)
