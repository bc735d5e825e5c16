"""The tables of ``billing_db``: their schema, the batched idempotent insert of orders, and rejections."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg2.extras import execute_values

from billing.order_status import OrderReader
from billing.purchases import CONFIRMED, PENDING, REJECTED, placed_event
from common.db import ConnectionPool, Schema, transaction
from common.inbox import INBOX
from common.log import request_id_var
from common.orders import MAX_ITEMS, USER_ID_MAX_LENGTH, Order
from common.outbox import OUTBOX, add_event
from contract import saga
from contract.saga import MAX_QUANTITY, MAX_TEXT_LENGTH

# Applied once each, in order, by common.db.Schema; never edit a released entry, append a new one.
MIGRATIONS = [
    f"""
    CREATE TABLE IF NOT EXISTS orders (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id         text          NOT NULL
                        CHECK (user_id <> '' AND char_length(user_id) <= {USER_ID_MAX_LENGTH}),
        number_of_items integer       NOT NULL CHECK (number_of_items BETWEEN 1 AND {MAX_ITEMS}),
        total_amount    numeric(12,2) NOT NULL CHECK (total_amount >= 0),
        -- AMQP message id: a redelivered message hits this constraint instead of becoming a second row.
        -- NULL (a publisher that sets no id) is allowed and never conflicts.
        message_id      text          UNIQUE,
        request_id      text,
        created_at      timestamptz   NOT NULL DEFAULT now()
    )
    """,
    # 2: who placed each order (order status: docs/patterns/asynchronous-request-reply.md), and the orders
    # billing refused, with why.
    """
    ALTER TABLE orders ADD COLUMN IF NOT EXISTS owner_sub text, ADD COLUMN IF NOT EXISTS owner_name text;
    -- GET /orders: one owner's orders, newest first, paged by id (keyset).
    CREATE INDEX IF NOT EXISTS orders_owner_newest ON orders (owner_sub, id DESC);
    CREATE TABLE IF NOT EXISTS rejected_orders (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id  text        NOT NULL UNIQUE,
        owner_sub   text,
        owner_name  text,
        kind        text        NOT NULL,
        reason      text        NOT NULL,
        rejected_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 3: express orders (the priority queue pattern): which queue the order asked for; older rows were standard.
    """
    ALTER TABLE orders ADD COLUMN IF NOT EXISTS priority text NOT NULL DEFAULT 'standard'
        CHECK (priority IN ('standard', 'express'))
    """,
    # 4: The leader's aggregates job (billing.aggregates): one row per closed minute, written once. ``repeats``
    # counts attempts to write a minute again, which only two leaders at once could make (it must stay 0).
    """
    CREATE INDEX IF NOT EXISTS orders_created_at ON orders (created_at);
    CREATE TABLE IF NOT EXISTS order_minutes (
        minute      timestamptz   PRIMARY KEY,
        orders      integer       NOT NULL CHECK (orders > 0),
        revenue     numeric(14,2) NOT NULL CHECK (revenue >= 0),
        repeats     integer       NOT NULL DEFAULT 0,
        written_at  timestamptz   NOT NULL DEFAULT now()
    )
    """,
    # 5: purchases (issue 15, the saga: docs/patterns/saga.md). A purchase is an order row with a movie and a
    # quantity (equal to number_of_items) and a saga status; classic orders keep NULL in every new column. The
    # outbox (events committed with the change they report) and the inbox (events already applied).
    f"""
    ALTER TABLE orders
        ADD COLUMN IF NOT EXISTS movie_id        bigint CHECK (movie_id >= 1),
        ADD COLUMN IF NOT EXISTS quantity        integer CHECK (quantity BETWEEN 1 AND {MAX_QUANTITY}),
        ADD COLUMN IF NOT EXISTS unit_price      numeric(12,2) CHECK (unit_price >= 0),
        ADD COLUMN IF NOT EXISTS purchase_status text
            CHECK (purchase_status IN ('{PENDING}', '{CONFIRMED}', '{REJECTED}')),
        ADD COLUMN IF NOT EXISTS purchase_reason text CHECK (char_length(purchase_reason) <= {MAX_TEXT_LENGTH}),
        ADD COLUMN IF NOT EXISTS invoice_key     text,
        ADD COLUMN IF NOT EXISTS invoice_sha256  text CHECK (invoice_sha256 ~ '^[0-9a-f]{{64}}$'),
        ADD COLUMN IF NOT EXISTS updated_at      timestamptz;
    ALTER TABLE orders ADD CONSTRAINT orders_purchase_shape CHECK (
        -- a purchase has all three, a classic order none
        (movie_id IS NULL) = (quantity IS NULL) AND (movie_id IS NULL) = (purchase_status IS NULL)
        AND (quantity IS NULL OR quantity = number_of_items)
        AND (purchase_status IS DISTINCT FROM '{CONFIRMED}' OR unit_price IS NOT NULL)
        AND (purchase_status IS DISTINCT FROM '{REJECTED}' OR purchase_reason IS NOT NULL)
        AND ((invoice_key IS NULL) = (invoice_sha256 IS NULL))
        AND (invoice_key IS NULL OR purchase_status = '{CONFIRMED}')
    );
    -- The leader's timeout job: the pending purchases, oldest first.
    CREATE INDEX IF NOT EXISTS orders_pending_purchases ON orders (created_at) WHERE purchase_status = '{PENDING}';
    {OUTBOX.migration()};
    {INBOX.migration()}
    """,
]

# ON CONFLICT DO NOTHING also absorbs the same message id twice within one statement.
_INSERT = (
    "INSERT INTO orders (user_id, number_of_items, total_amount, message_id, request_id, owner_sub, owner_name,"
    " priority, movie_id, quantity, purchase_status) VALUES %s ON CONFLICT (message_id) DO NOTHING"
    " RETURNING message_id"
)
# The first reason recorded for an id stands (a redelivered rejection is the same rejection).
_REJECT = (
    "INSERT INTO rejected_orders (message_id, owner_sub, owner_name, kind, reason) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (message_id) DO NOTHING"
)
#: Longest reason kept for a rejected order (the same bound as the dead-letter header).
MAX_REJECTION_REASON = 500


@dataclass(frozen=True)
class OrderRecord:
    """One order about to be written, with the ids that identify the message it came from."""

    order: Order
    message_id: str | None
    request_id: str | None
    owner: Owner | None = None


@dataclass(frozen=True)
class Owner:
    """Who placed an order: the principal's ``sub`` (what reads are filtered by) and a readable name."""

    sub: str | None
    name: str | None = None


class OrderStore:
    """Writes orders to PostgreSQL; connections come from the shared pool, the schema is migrated on first use."""

    def __init__(self, pool: ConnectionPool):
        self._pool = pool
        self._schema = Schema(pool, "billing", MIGRATIONS)

    def check(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the database answers and the schema is in place."""
        self._schema.ensure()
        self._pool.ping()

    def insert(self, records: Sequence[OrderRecord]) -> list[bool]:
        """Write ``records`` with one multi-row INSERT, which commits atomically (autocommit connection).

        A batch holding purchases (stored ``pending``) commits the INSERT and the ``order.placed`` event of
        every purchase it newly stored in one transaction (the transactional outbox): a redelivered purchase
        is no new row and so adds no second event. A purchase needs a message id (its saga order id); one
        without is a ``ValueError``, as is an id longer than an event may carry.

        Returns, per record, True when it became a row and False when its message id was already stored
        (a redelivery). Raises ``DatabaseUnavailable`` when the database cannot be reached (nothing was
        written), or a ``psycopg2.Error`` when the database refused the data (nothing was written either).
        """
        if not records:
            return []
        self._schema.ensure()
        values = [
            (
                r.order.user_id, r.order.number_of_items, r.order.total_amount, r.message_id, r.request_id,
                r.owner.sub if r.owner else None, r.owner.name if r.owner else None, r.order.priority,
                r.order.movie_id, r.order.quantity, PENDING if r.order.is_purchase else None,
            )
            for r in records
        ]
        purchases = [r for r in records if r.order.is_purchase]
        if not purchases:
            with self._pool.connection() as conn, conn.cursor() as cur:
                # page_size = all rows: one statement, hence one transaction, for the whole batch.
                returned = execute_values(cur, _INSERT, values, page_size=len(values), fetch=True)
        else:
            events = {r.message_id: r for r in reversed(purchases)}  # the first record of an id wins, as below
            placed = {message_id: placed_event(record) for message_id, record in events.items()}
            with self._pool.connection() as conn, transaction(conn) as cur:
                returned = execute_values(cur, _INSERT, values, page_size=len(values), fetch=True)
                for (message_id,) in returned:
                    if message_id in placed:
                        _add_with_request_id(cur, placed.pop(message_id), events[message_id].request_id)
        inserted = Counter(row[0] for row in returned)
        outcome = []
        for record in records:
            if record.message_id is None:
                outcome.append(True)
            elif inserted[record.message_id] > 0:
                # The first record with this id in the batch is the one that became the row.
                inserted[record.message_id] -= 1
                outcome.append(True)
            else:
                outcome.append(False)
        return outcome

    def record_rejection(self, message_id: str, owner: Owner | None, kind: str, reason: str) -> bool:
        """Record that the order ``message_id`` will never be stored, so its status reads ``rejected``.

        The one call for every path that gives an order up (invalid data here; a dead letter billing stops
        re-driving, later). Idempotent: the first reason recorded stands; returns True when this call recorded
        it. Raises ``DatabaseUnavailable`` when the database cannot be reached (nothing was recorded).
        """
        self._schema.ensure()
        row = (
            _text(message_id), _text(owner.sub) if owner else None, _text(owner.name) if owner else None,
            _text(kind), _text(reason)[:MAX_REJECTION_REASON],
        )
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_REJECT, row)
            return cur.rowcount == 1

    def reader(self) -> OrderReader:
        """The read side (order status, lists) over the same pool and schema."""
        return OrderReader(self._pool, self._schema)

    @property
    def pool(self) -> ConnectionPool:
        """The connection pool (the leader's jobs query through it; call :meth:`check` first for the schema)."""
        return self._pool

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()


def _add_with_request_id(cur, event: saga.Event, request_id: str | None) -> None:
    """Add ``event`` to the outbox carrying the request id of the order it reports (its log context)."""
    token = request_id_var.set(request_id)
    try:
        add_event(cur, event)
    finally:
        request_id_var.reset(token)


def _text(value: str | None) -> str | None:
    """``value`` as PostgreSQL text can hold it (no NUL characters: a header may carry anything)."""
    return None if value is None else value.replace("\x00", "\ufffd")
