"""The transactional outbox: an event is a row written in the transaction of the state change it reports, and a
relay publishes the rows to the saga's exchange with publisher confirms (docs/patterns/saga.md).

- :func:`add_event` inserts the row with the caller's cursor, inside the caller's transaction: the change and
  its event commit together or not at all. The same statement sends a ``NOTIFY``, which PostgreSQL delivers on
  commit only, so the relay wakes at once (and never for a rolled-back event).
- :class:`OutboxRelay` (``common.outbox_relay``) publishes committed rows in id order and deletes them.
- ``OutboxTable.migration()`` is the SQL a service appends to its migration list (``common.db.Schema``).

A row is deleted only after the broker confirmed its message, so an event is never lost; a crash between the
confirm and the delete publishes it again, which is why every consumer is idempotent (``common.inbox``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from common import tracing
from common.log import request_id_var
from contract import messaging
from contract.saga import Event

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


class NotInTransaction(RuntimeError):
    """``add_event`` (or ``first_time``) got an autocommit cursor: the row would commit on its own, apart from
    the state change it belongs to."""


def require_transaction(cursor: psycopg2.extensions.cursor, what: str) -> None:
    """Raise :class:`NotInTransaction` when ``cursor`` commits each statement by itself."""
    if cursor.connection.autocommit:
        raise NotInTransaction(f"{what} must run inside the caller's transaction (common.db.transaction)")


@dataclass(frozen=True)
class OutboxTable:
    """An outbox table and the ``NOTIFY`` channel of its new rows (each service has one: ``OUTBOX``; tests use
    tables of their own)."""

    name: str = "outbox"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"outbox table name must match {_NAME.pattern}, got {self.name!r}")

    @property
    def channel(self) -> str:
        """The ``LISTEN``/``NOTIFY`` channel announcing committed rows."""
        return f"{self.name}_new"

    @property
    def identifier(self) -> sql.Identifier:
        """The table name, quoted for SQL."""
        return sql.Identifier(self.name)

    def migration(self) -> str:
        """The ``CREATE TABLE`` a service appends to its ``MIGRATIONS`` (idempotent)."""
        return f"""
        CREATE TABLE IF NOT EXISTS {self.name} (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            -- The AMQP message id: consumers deduplicate on it, so one event is one row.
            event_id    text        NOT NULL UNIQUE,
            routing_key text        NOT NULL,
            body        bytea       NOT NULL,
            -- AMQP headers to send (traceparent, x-request-id): a JSON object of text values.
            headers     jsonb       NOT NULL DEFAULT '{{}}',
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """


#: The outbox of a service's own database.
OUTBOX = OutboxTable()


def add_event(cursor: psycopg2.extensions.cursor, event: Event, *, table: OutboxTable = OUTBOX) -> None:
    """Write ``event`` to the outbox in the caller's open transaction (never autocommit: NotInTransaction).

    The headers carry the current trace context and request id, so the consumer's spans and logs join the
    request that caused the event. A second event with the same id is refused (UniqueViolation): ids are fresh.
    """
    require_transaction(cursor, "add_event")
    headers: dict[str, str] = {}
    tracing.inject(headers)
    request_id = request_id_var.get(None)
    if request_id:
        headers[messaging.REQUEST_ID] = request_id
    # One round trip: the insert, and the notification PostgreSQL sends when (if) the transaction commits.
    cursor.execute(
        sql.SQL(
            "WITH added AS (INSERT INTO {} (event_id, routing_key, body, headers) VALUES (%s, %s, %s, %s) RETURNING id)"
            " SELECT pg_notify(%s, '') FROM added"
        ).format(table.identifier),
        (event.event_id, event.routing_key, event.body(), json.dumps(headers), table.channel),
    )
