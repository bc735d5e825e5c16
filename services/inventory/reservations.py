"""Inventory's part of the purchase saga: reserve stock for ``order.placed``, release it for ``order.cancelled``.

:func:`apply` is the handler ``common.saga_consumer.SagaConsumer`` calls for each new event of the
``inventory.saga`` queue, with the cursor of the consumer's transaction: the stock change, the ``reservations``
row and the emitted event (``common.outbox.add_event``) commit together with the inbox record, or not at all.

A reservation row per order id is the state machine (docs/patterns/saga.md, "Inventory"):

- ``reserved``: the quantity was taken off the movie's stock at ``unit_price``; ``stock.reserved`` was emitted.
- ``rejected``: nothing was taken (unknown movie, not for sale, price mismatch, not enough stock, or cancelled
  before it was placed); ``stock.rejected`` was emitted with the reason.
- ``released``: a reserved quantity was given back once, for ``order.cancelled`` (the compensation).
- ``cancelled-before-placed``: a tombstone; the cancel overtook the placement (competing consumers, a
  redelivery), so the placement, when it comes, is rejected instead of reserving stock nobody will pay for.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import psycopg2.extensions

from common.outbox import OUTBOX, OutboxTable, add_event
from contract import saga
from inventory import metrics

log = logging.getLogger(__name__)

RESERVED, RELEASED, REJECTED, TOMBSTONE = "reserved", "released", "rejected", "cancelled-before-placed"

#: First key of the per-order advisory lock (the second is the order id's hash): a namespace of its own.
_LOCK_NAMESPACE = "inventory.reservations"


class UnexpectedEvent(ValueError):
    """An event type inventory does not consume (a dead letter replayed to the wrong queue): dead-lettered."""


def apply(cursor: psycopg2.extensions.cursor, event: saga.Event, *, outbox: OutboxTable = OUTBOX) -> None:
    """Apply one saga event in the caller's transaction (``SagaConsumer`` already recorded it in the inbox); the
    events it emits go to ``outbox`` (movies_db's; tests use tables of their own)."""
    # One order's placement and cancel may be handled at the same moment by two workers (competing consumers):
    # the transaction-scoped lock on the order id makes them take turns, so the second one sees the first one's
    # row (a tombstone, a reservation) instead of both inserting one. Different orders never wait on each other
    # here (a hash collision only makes two orders take turns). Taken before any movie row lock, in both
    # handlers, so the two locks are always taken in the same order (no deadlock).
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (_LOCK_NAMESPACE, event.order_id))
    if event.type == saga.ORDER_PLACED:
        _place(cursor, event, outbox)
    elif event.type == saga.ORDER_CANCELLED:
        _cancel(cursor, event)
    else:
        raise UnexpectedEvent(f"inventory does not handle {event.type} events")


def _reservation(cursor: psycopg2.extensions.cursor, order_id: str) -> tuple[str, int, int] | None:
    """(status, movie_id, quantity) of the order's reservation row, or None."""
    cursor.execute("SELECT status, movie_id, quantity FROM reservations WHERE order_id = %s", (order_id,))
    return cursor.fetchone()


def _place(cursor: psycopg2.extensions.cursor, event: saga.Event, outbox: OutboxTable) -> None:
    movie_id, quantity = event.data["movie_id"], event.data["quantity"]
    existing = _reservation(cursor, event.order_id)
    if existing is not None and existing[0] != TOMBSTONE:
        # A second placement of one order (a new event id for the same order): the first one decided; never
        # reserve twice.
        log.warning("placement of an order already handled; ignored", extra={"order_id": event.order_id})
        return
    if existing is not None:
        _reject(cursor, event, outbox, "the order was cancelled before it was placed", tombstone=True)
        return

    # SELECT ... FOR UPDATE, then the UPDATE: the row lock is held until the commit, so the stock and price
    # decided on are the ones decremented, and a concurrent reservation of the same movie waits for this one
    # to commit and then reads the lowered stock: never below zero, never oversold. (A conditional
    # "UPDATE ... WHERE stock >= q" would lock the same way; reading first lets a rejection say exactly why,
    # from the values under the lock.) The UPDATE keeps the condition and the CHECK movies_stock_not_negative
    # backs both.
    cursor.execute("SELECT title, stock, price FROM movies WHERE id = %s FOR UPDATE", (movie_id,))
    movie = cursor.fetchone()
    reason = _refusal(movie, event)
    if reason is not None:
        _reject(cursor, event, outbox, reason)
        return
    title, _, price = movie
    cursor.execute(
        "UPDATE movies SET stock = stock - %s WHERE id = %s AND stock >= %s", (quantity, movie_id, quantity)
    )
    if cursor.rowcount != 1:  # cannot happen under the row lock; refuse rather than reserve without stock
        raise RuntimeError(f"stock of movie {movie_id} changed under its row lock")
    cursor.execute(
        "INSERT INTO reservations (order_id, movie_id, quantity, unit_price, status) VALUES (%s, %s, %s, %s, %s)",
        (event.order_id, movie_id, quantity, price, RESERVED),
    )
    data = {"movie_id": movie_id, "quantity": quantity, "unit_price": price, "title": title,
            **_principal(event)}
    add_event(cursor, saga.new_event(saga.STOCK_RESERVED, event.order_id, data), table=outbox)
    metrics.RESERVATIONS.labels(RESERVED).inc()


def _refusal(movie: tuple[str, int | None, Decimal | None] | None, event: saga.Event) -> str | None:
    """Why the placement cannot be reserved, or None when it can."""
    movie_id, quantity = event.data["movie_id"], event.data["quantity"]
    if movie is None:
        return f"movie {movie_id} does not exist"
    _, stock, price = movie
    if stock is None or price is None:
        return f"movie {movie_id} is not for sale"
    total = Decimal(event.data["total_amount"])
    if price * quantity != total:
        return f"total_amount {total} does not match price {price} x {quantity} = {price * quantity}"
    if stock < quantity:
        return f"not enough stock for movie {movie_id}: {quantity} wanted, only {stock} in stock"
    return None


def _reject(
    cursor: psycopg2.extensions.cursor, event: saga.Event, outbox: OutboxTable, reason: str, *, tombstone: bool = False
) -> None:
    """Record the rejection (turning a tombstone into ``rejected``) and emit ``stock.rejected``."""
    movie_id, quantity = event.data["movie_id"], event.data["quantity"]
    if tombstone:
        cursor.execute(
            "UPDATE reservations SET status = %s, reason = %s, updated_at = now() WHERE order_id = %s",
            (REJECTED, reason, event.order_id),
        )
    else:
        cursor.execute(
            "INSERT INTO reservations (order_id, movie_id, quantity, status, reason) VALUES (%s, %s, %s, %s, %s)",
            (event.order_id, movie_id, quantity, REJECTED, reason),
        )
    data: dict[str, Any] = {"movie_id": movie_id, "quantity": quantity, "reason": reason, **_principal(event)}
    add_event(cursor, saga.new_event(saga.STOCK_REJECTED, event.order_id, data), table=outbox)
    metrics.RESERVATIONS.labels(REJECTED).inc()


def _principal(placed: saga.Event) -> dict[str, Any]:
    """``{"principal": ...}`` of ``order.placed``, echoed in the answer: billing applies the answer in the shard
    of that principal's orders (docs/patterns/sharding.md); {} when the placement named none."""
    principal = placed.data.get("principal")
    return {"principal": principal} if isinstance(principal, dict) else {}


def _cancel(cursor: psycopg2.extensions.cursor, event: saga.Event) -> None:
    existing = _reservation(cursor, event.order_id)
    if existing is None:
        # The cancel overtook the placement: leave a tombstone so the placement is rejected when it arrives.
        cursor.execute(
            "INSERT INTO reservations (order_id, movie_id, quantity, status, reason) VALUES (%s, %s, %s, %s, %s)",
            (event.order_id, event.data["movie_id"], event.data["quantity"], TOMBSTONE, event.data["reason"]),
        )
        metrics.RESERVATIONS.labels("tombstone").inc()
        return
    status, movie_id, quantity = existing
    if status != RESERVED:
        return  # released already, rejected (nothing was taken) or a tombstone: nothing to give back
    # Exactly what this order took, from its row (not the event's figures), once: the row leaves 'reserved'.
    # A movie taken off sale since (stock null) or deleted gets nothing back: there is no stock to return to.
    cursor.execute("UPDATE movies SET stock = stock + %s WHERE id = %s AND stock IS NOT NULL", (quantity, movie_id))
    cursor.execute(
        "UPDATE reservations SET status = %s, reason = %s, updated_at = now() WHERE order_id = %s",
        (RELEASED, event.data["reason"], event.order_id),
    )
    metrics.RESERVATIONS.labels(RELEASED).inc()
