"""Billing's part of the purchase saga: the handler of ``billing.saga`` and the leader's purchase timeout.

A purchase is stored ``pending`` with its ``order.placed`` event (``billing.store``). Then, through
:class:`common.saga_consumer.SagaConsumer` (the cursor it passes is one transaction with the inbox record):

- ``stock.reserved``: a pending purchase whose ``unit_price`` x ``quantity`` equals its ``total_amount`` becomes
  ``confirmed`` and ``order.confirmed`` is emitted (with the movie's ``title`` when inventory sent one). A
  purchase that is no longer pending (it timed out) or whose price does not match is not confirmed: billing
  emits ``order.cancelled`` so inventory releases the stock (the compensation); a pending one becomes
  ``rejected`` with the reason. A purchase already confirmed keeps its reservation (nothing is emitted).
- ``stock.rejected``: a pending purchase becomes ``rejected`` with inventory's reason.
- ``invoice.ready``: the invoice's key and SHA-256 are recorded on the confirmed purchase.

An event about an order billing has no purchase for cannot be one of ours: :class:`UnknownOrder` sends it to
the dead-letter queue with the reason. The leader's job :func:`reject_timed_out` rejects purchases inventory
has not answered within ``PURCHASE_TIMEOUT_SECONDS`` and emits ``order.cancelled`` for each, in one transaction.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import psycopg2.extensions

from billing.purchases import CONFIRMED, PENDING, REJECTED, principal_of
from common.outbox import add_event
from contract import invoices, saga

log = logging.getLogger(__name__)

Cursor = psycopg2.extensions.cursor

#: Pending purchases one run of the timeout job rejects at most (the next run takes the rest).
TIMEOUT_BATCH = 500

_PURCHASE = (
    "SELECT movie_id, quantity, total_amount, purchase_status, purchase_reason, owner_sub, owner_name"
    " FROM orders WHERE message_id = %s AND movie_id IS NOT NULL FOR UPDATE"
)
_SET_STATUS = (
    "UPDATE orders SET purchase_status = %s, purchase_reason = %s, unit_price = COALESCE(%s, unit_price),"
    " updated_at = now() WHERE message_id = %s"
)


class UnknownOrder(LookupError):
    """A saga event names an order that is not one of billing's purchases (or not in the state it needs)."""


def handle_event(cur: Cursor, event: saga.Event) -> None:
    """Apply one event of ``billing.saga`` through ``cur`` (the consumer's transaction)."""
    handlers = {
        saga.STOCK_RESERVED: _stock_reserved,
        saga.STOCK_REJECTED: _stock_rejected,
        saga.INVOICE_READY: _invoice_ready,
    }
    handler = handlers.get(event.type)
    if handler is None:
        raise UnknownOrder(f"billing does not consume {event.type} events")
    handler(cur, event)


def _purchase(cur: Cursor, event: saga.Event) -> dict[str, Any]:
    """The purchase ``event`` is about, locked for this transaction; UnknownOrder when there is none."""
    cur.execute(_PURCHASE, (event.order_id,))
    row = cur.fetchone()
    if row is None:
        raise UnknownOrder(f"{event.type} for order {event.order_id!r}, which is not a purchase billing stored")
    names = ("movie_id", "quantity", "total_amount", "status", "reason", "owner_sub", "owner_name")
    return dict(zip(names, row, strict=True))


def _stock_reserved(cur: Cursor, event: saga.Event) -> None:
    purchase = _purchase(cur, event)
    unit_price = Decimal(event.data["unit_price"])
    if purchase["status"] == CONFIRMED:
        # Already confirmed (a second reservation event): the stock stays reserved for this order.
        log.warning("stock.reserved for a confirmed purchase ignored", extra={"order_id": event.order_id})
        return
    problem = _mismatch(purchase, event.data, unit_price)
    if purchase["status"] != PENDING:
        problem = f"the order was {purchase['status']} before the stock was reserved ({purchase['reason']})"
    if problem:
        if purchase["status"] == PENDING:
            cur.execute(_SET_STATUS, (REJECTED, _bounded(problem), unit_price, event.order_id))
        _emit(cur, saga.ORDER_CANCELLED, event.order_id, {
            "movie_id": event.data["movie_id"], "quantity": event.data["quantity"], "reason": _bounded(problem),
        })
        log.info("purchase cancelled after a reservation", extra={"order_id": event.order_id, "reason": problem})
        return
    cur.execute(_SET_STATUS, (CONFIRMED, None, unit_price, event.order_id))
    data: dict[str, Any] = {
        "movie_id": purchase["movie_id"], "quantity": purchase["quantity"], "unit_price": unit_price,
        "total_amount": purchase["total_amount"],
        "principal": principal_of(purchase["owner_sub"], purchase["owner_name"]),
    }
    title = event.data.get("title")
    if isinstance(title, str) and title.strip() and len(title) <= saga.MAX_TEXT_LENGTH:
        data["title"] = title
    _emit(cur, saga.ORDER_CONFIRMED, event.order_id, data)
    log.info("purchase confirmed", extra={"order_id": event.order_id})


def _mismatch(purchase: dict[str, Any], data: dict[str, Any], unit_price: Decimal) -> str | None:
    """Why a reservation cannot confirm this purchase (another movie or quantity, another price); None if it can."""
    if (data["movie_id"], data["quantity"]) != (purchase["movie_id"], purchase["quantity"]):
        return (
            f"inventory reserved {data['quantity']} of movie {data['movie_id']}, the order is for "
            f"{purchase['quantity']} of movie {purchase['movie_id']}"
        )
    expected = unit_price * purchase["quantity"]
    if expected != purchase["total_amount"]:
        return (
            f"price changed: {purchase['quantity']} x {unit_price} = {expected:.2f}, the order's total_amount is "
            f"{purchase['total_amount']:.2f}"
        )
    return None


def _stock_rejected(cur: Cursor, event: saga.Event) -> None:
    purchase = _purchase(cur, event)
    if purchase["status"] != PENDING:
        # Rejected already (timed out: inventory then saw the cancel first), or confirmed by an earlier
        # reservation, which a later rejection does not undo.
        log.info("stock.rejected for a settled purchase ignored",
                 extra={"order_id": event.order_id, "status": purchase["status"]})
        return
    cur.execute(_SET_STATUS, (REJECTED, _bounded(event.data["reason"]), None, event.order_id))
    log.info("purchase rejected by inventory", extra={"order_id": event.order_id, "reason": event.data["reason"]})


def _invoice_ready(cur: Cursor, event: saga.Event) -> None:
    key = event.data["key"]
    # Billing presigns GETs of this key: only the order's own invoice key is accepted, never another object.
    if not invoices.valid_order_id(event.order_id) or key != invoices.invoice_key(event.order_id):
        raise UnknownOrder(f"invoice key {key!r} is not the invoice key of order {event.order_id!r}")
    cur.execute(
        "UPDATE orders SET invoice_key = %s, invoice_sha256 = %s, updated_at = now()"
        " WHERE message_id = %s AND purchase_status = %s",
        (key, event.data["sha256"], event.order_id, CONFIRMED),
    )
    if cur.rowcount != 1:
        raise UnknownOrder(f"invoice.ready for order {event.order_id!r}, which is not a confirmed purchase")
    log.info("invoice recorded", extra={"order_id": event.order_id})


def reject_timed_out(cur: Cursor, timeout_seconds: float, limit: int = TIMEOUT_BATCH) -> int:
    """Reject the purchases pending longer than ``timeout_seconds`` and emit ``order.cancelled`` for each, through
    ``cur`` (one transaction: the caller commits); returns how many. Rows a saga event holds are skipped: the
    event settles them, or the next run does."""
    reason = f"timed out: inventory did not answer within {timeout_seconds:g} seconds"
    cur.execute(
        "WITH expired AS ("
        "  SELECT id FROM orders WHERE purchase_status = %s AND created_at < now() - make_interval(secs => %s)"
        "  ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED)"
        " UPDATE orders SET purchase_status = %s, purchase_reason = %s, updated_at = now()"
        " FROM expired WHERE orders.id = expired.id RETURNING message_id, movie_id, quantity",
        (PENDING, timeout_seconds, limit, REJECTED, reason),
    )
    rows = cur.fetchall()
    for message_id, movie_id, quantity in rows:
        _emit(cur, saga.ORDER_CANCELLED, message_id, {"movie_id": movie_id, "quantity": quantity, "reason": reason})
    if rows:
        log.warning("rejected purchases that timed out", extra={"count": len(rows), "reason": reason})
    return len(rows)


def _emit(cur: Cursor, event_type: str, order_id: str, data: dict[str, Any]) -> None:
    add_event(cur, saga.new_event(event_type, order_id, data))


def _bounded(text: str) -> str:
    """``text`` cut to what an event's reason (and the row's CHECK) allows."""
    return text if len(text) <= saga.MAX_TEXT_LENGTH else text[: saga.MAX_TEXT_LENGTH - 1] + "…"
