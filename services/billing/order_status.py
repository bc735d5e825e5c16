"""Reading orders back: one order's status by its id, and one owner's orders newest first (keyset pages).

A purchase (an order with a movie, docs/patterns/saga.md) reads with its saga status instead of ``stored``:
``pending``, ``confirmed`` (with ``unit_price`` and, once the invoice is ready, ``invoice_url``) or
``rejected`` (with ``reason``).

Billing owns ``billing_db``, so it answers these reads; the gateway forwards them after it has verified the
caller and the order id (``gateway.order_ids``). An id billing has no row for is therefore an order the
gateway issued that the broker still holds: ``queued``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from common.amounts import render_amount
from common.db import ConnectionPool, Schema
from common.extensions import Extension

_CURSOR_PREFIX = "o1:"
# The largest bigint: an id past it cannot be in the table, so such a cursor is malformed.
_MAX_ID = 2**63 - 1


class InvalidCursor(ValueError):
    """A ``cursor`` that this service did not hand out."""


def encode_cursor(last_id: int) -> str:
    """The opaque cursor of the page after the order whose row id is ``last_id`` (URL-safe, no padding)."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id a cursor of :func:`encode_cursor` continues after; :class:`InvalidCursor` otherwise."""
    if not cursor or len(cursor) > 64:
        raise InvalidCursor("cursor is not one this API handed out")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor("cursor is not one this API handed out") from None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if text == digits or not digits.isdigit() or not digits.isascii() or not 0 < int(digits) <= _MAX_ID:
        raise InvalidCursor("cursor is not one this API handed out")
    return int(digits)


@dataclass(frozen=True)
class Reader:
    """Whose orders a read may see: one owner's (``sub``; "" is the anonymous caller of a gateway with auth
    off), or everyone's (``read_all``: the ``billing.read`` permission)."""

    sub: str
    read_all: bool = False

    def may_see(self, owner_sub: str | None) -> bool:
        """True when this reader may see an order placed by ``owner_sub``."""
        return self.read_all or (owner_sub or "") == self.sub


_STORED = (
    "SELECT message_id, user_id, number_of_items, total_amount, request_id, owner_sub, owner_name, created_at, id,"
    " movie_id, quantity, unit_price, purchase_status, purchase_reason, invoice_key, updated_at"
    " FROM orders"
)
_REJECTED = "SELECT message_id, owner_sub, owner_name, kind, reason, rejected_at FROM rejected_orders"


def _stored(row: tuple) -> dict[str, Any]:
    message_id, user_id, items, amount, request_id, _sub, owner_name, created_at, _id = row[:9]
    if row[9] is not None:
        return _purchase(row)
    return {
        "status": "stored",
        "order_id": message_id,
        "order_url": f"/api/orders/{message_id}",
        "user_id": user_id,
        "number_of_items": items,
        "total_amount": render_amount(amount),
        "request_id": request_id,
        "placed_by": owner_name,
        "stored_at": created_at.isoformat(timespec="milliseconds"),
    }


def _purchase(row: tuple) -> dict[str, Any]:
    """A purchase as its owner sees it: its saga status (pending, confirmed, rejected) and what it bought."""
    message_id, user_id, _items, amount, request_id, _sub, owner_name, created_at, _id = row[:9]
    movie_id, quantity, unit_price, status, reason, invoice_key, updated_at = row[9:]
    found: dict[str, Any] = {
        "status": status,
        "order_id": message_id,
        "order_url": f"/api/orders/{message_id}",
        "user_id": user_id,
        "movie_id": movie_id,
        "quantity": quantity,
        "unit_price": render_amount(unit_price) if unit_price is not None else None,
        "total_amount": render_amount(amount),
        "request_id": request_id,
        "placed_by": owner_name,
        "stored_at": created_at.isoformat(timespec="milliseconds"),
        "updated_at": (updated_at or created_at).isoformat(timespec="milliseconds"),
    }
    if reason is not None:
        found["reason"] = reason
    if invoice_key is not None:
        found["invoice_url"] = f"/api/orders/{message_id}/invoice"
    return found


class OrderReader:
    """The read side of ``billing_db`` (the consumer writes through ``billing.store.OrderStore``)."""

    def __init__(self, pool: ConnectionPool, schema: Schema):
        self._pool = pool
        self._schema = schema

    def status(self, order_id: str, reader: Reader) -> dict[str, Any] | None:
        """The order as ``reader`` may see it: stored, rejected, or None (no record, or not theirs)."""
        self._schema.ensure()
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"{_STORED} WHERE message_id = %s", (order_id,))
            row = cur.fetchone()
            if row is not None:
                return _stored(row) if reader.may_see(row[5]) else None
            cur.execute(f"{_REJECTED} WHERE message_id = %s", (order_id,))
            rejected = cur.fetchone()
        if rejected is None:
            return {"status": "queued", "order_id": order_id, "order_url": f"/api/orders/{order_id}"}
        message_id, owner_sub, owner_name, kind, reason, rejected_at = rejected
        if not reader.may_see(owner_sub):
            return None
        return {
            "status": "rejected",
            "order_id": message_id,
            "order_url": f"/api/orders/{message_id}",
            "reason": reason,
            "kind": kind,
            "placed_by": owner_name,
            "rejected_at": rejected_at.isoformat(timespec="milliseconds"),
        }

    def invoice_key(self, order_id: str, reader: Reader) -> tuple[bool, str | None]:
        """Whether ``reader`` may see the order ``order_id`` (False: no such order, or not theirs) and the key of
        its invoice (None until ``invoice.ready`` recorded one)."""
        self._schema.ensure()
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT owner_sub, invoice_key FROM orders WHERE message_id = %s", (order_id,))
            row = cur.fetchone()
        if row is None or not reader.may_see(row[0]):
            return False, None
        return True, row[1]

    def page(self, reader: Reader, limit: int, after: int | None) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` stored orders ``reader`` may see, newest first, after the row id ``after``; and the
        cursor of the next page (None on the last)."""
        rows = self.rows(reader, limit + 1, after)  # one row more than asked: whether it exists decides "more"
        more = len(rows) > limit
        rows = rows[:limit]
        return [item for _, _, item in rows], (encode_cursor(rows[-1][0]) if more else None)

    def rows(self, reader: Reader, limit: int, after: int | None) -> list[tuple[int, Any, dict[str, Any]]]:
        """Up to ``limit`` stored orders ``reader`` may see, newest (highest row id) first, after the row id
        ``after``, each as (row id, stored at, order)."""
        self._schema.ensure()
        conditions, params = [], []
        if not reader.read_all:
            # "" (no principal) matches the orders published without one.
            conditions.append("owner_sub = %s" if reader.sub else "owner_sub IS NULL")
            params += [reader.sub] if reader.sub else []
        if after is not None:
            conditions.append("id < %s")
            params.append(after)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"{_STORED}{where} ORDER BY id DESC LIMIT %s", (*params, limit))
            return [(row[8], row[7], _stored(row)) for row in cur.fetchall()]


#: The app's reader (a ``billing.shard_reads.ShardedReader`` over the shards), installed by ``billing.create_app``.
ORDER_READER: Extension[Any] = Extension("billing.orders")
