"""The idempotent inbox: which saga events a consumer has already applied, recorded in the same transaction as
the state change they caused (docs/patterns/saga.md).

The outbox relay and the broker deliver at least once, so an event may arrive twice (a relay crash between
the confirm and its delete, a consumer crash between its commit and its ack). The consumer calls
:func:`first_time` inside its transaction before changing anything: False means the change was already
committed for this event, and the consumer only acknowledges it. Both commit or roll back together, so an
event is applied exactly once whatever fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql

from common.outbox import require_transaction

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


@dataclass(frozen=True)
class InboxTable:
    """The table of applied events (each service has one: ``INBOX``; tests use tables of their own)."""

    name: str = "processed_events"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"inbox table name must match {_NAME.pattern}, got {self.name!r}")

    def migration(self) -> str:
        """The ``CREATE TABLE`` a service appends to its ``MIGRATIONS`` (idempotent)."""
        return f"""
        CREATE TABLE IF NOT EXISTS {self.name} (
            consumer     text        NOT NULL,
            event_id     text        NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, event_id)
        );
        CREATE INDEX IF NOT EXISTS {self.name}_processed_at ON {self.name} (processed_at)
        """


#: The inbox of a service's own database.
INBOX = InboxTable()


def first_time(
    cursor: psycopg2.extensions.cursor, event_id: str, consumer: str, *, table: InboxTable = INBOX
) -> bool:
    """Record that ``consumer`` applies ``event_id`` in the caller's open transaction; False for a replay.

    A concurrent transaction recording the same event waits on the row's key until the other commits (then
    False) or rolls back (then True): two copies of one event are never applied at once.
    """
    require_transaction(cursor, "first_time")
    cursor.execute(
        sql.SQL("INSERT INTO {} (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(
            sql.Identifier(table.name)
        ),
        (consumer, event_id),
    )
    return cursor.rowcount == 1


def forget_before(cursor: psycopg2.extensions.cursor, days: int, *, table: InboxTable = INBOX) -> int:
    """Delete the records older than ``days`` days (a leader's periodic job); returns how many.

    Keep far longer than any redelivery can take (dead letters replayed days later are replays too).
    """
    cursor.execute(
        sql.SQL("DELETE FROM {} WHERE processed_at < now() - make_interval(days => %s)").format(
            sql.Identifier(table.name)
        ),
        (days,),
    )
    return cursor.rowcount
