"""The ``orders`` table of ``billing_db``: its schema and the batched, idempotent insert."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg2.extras import execute_values

from common.db import ConnectionPool, Schema
from common.orders import MAX_ITEMS, USER_ID_MAX_LENGTH, Order

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
    # The leader's aggregates job (billing.aggregates): one row per closed minute, written once. ``repeats``
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
]

# ON CONFLICT DO NOTHING also absorbs the same message id twice within one statement.
_INSERT = (
    "INSERT INTO orders (user_id, number_of_items, total_amount, message_id, request_id) VALUES %s"
    " ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
)


@dataclass(frozen=True)
class OrderRecord:
    """One order about to be written, with the ids that identify the message it came from."""

    order: Order
    message_id: str | None
    request_id: str | None


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

        Returns, per record, True when it became a row and False when its message id was already stored
        (a redelivery). Raises ``DatabaseUnavailable`` when the database cannot be reached (nothing was
        written), or a ``psycopg2.Error`` when the database refused the data (nothing was written either).
        """
        if not records:
            return []
        self._schema.ensure()
        values = [
            (r.order.user_id, r.order.number_of_items, r.order.total_amount, r.message_id, r.request_id)
            for r in records
        ]
        with self._pool.connection() as conn, conn.cursor() as cur:
            # page_size = all rows: one statement, hence one transaction, for the whole batch.
            returned = execute_values(cur, _INSERT, values, page_size=len(values), fetch=True)
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

    @property
    def pool(self) -> ConnectionPool:
        """The connection pool (the leader's jobs query through it; call :meth:`check` first for the schema)."""
        return self._pool

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()
