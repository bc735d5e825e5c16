"""The outbox relay: a thread that publishes committed outbox rows to the saga's exchange and deletes them.

- **Never lost**: each message is published persistent and ``mandatory`` on a channel in confirm mode; the rows
  are deleted in the same transaction that locked them, only after every one of them was confirmed.
- **At least once**: a crash (or a lost database) after the confirm and before the commit publishes the rows
  again; consumers deduplicate by event id (``common.inbox``).
- **Several relays** (workers, tasks) share one outbox: ``SELECT ... FOR UPDATE SKIP LOCKED`` gives each batch
  to one relay, so no row is published by two at once. One relay publishes in id order; two relays publish
  their batches side by side (the saga's events of one order are caused by one another, so they stay ordered).
- **Prompt**: ``LISTEN`` on the outbox channel wakes the relay when a transaction with events commits; it also
  looks every ``poll_interval`` seconds (a missed notification costs that much latency, never an event).
- **Resilient**: when PostgreSQL or RabbitMQ is away it backs off (capped, jittered) and reconnects, re-reading
  a rotated login (``common.amqp.open_connection``, ``common.db.ConnectionPool``).
- **Large events by claim check**: with a ``claim_check_store``, a body over 64 KiB is stored in S3 and the
  message carries the reference (``common.claim_check.wrap``; docs/patterns/claim-check.md).
- **Observable**: ``outbox_pending_events`` and ``outbox_oldest_pending_age_seconds`` (``common.metrics``) are
  measured at every wake-up, also while the broker is away: that is when events get stuck.
"""

from __future__ import annotations

import logging
import os
import select
import threading

import pika
import pika.exceptions
import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from common import claim_check, metrics
from common.amqp import declare_saga, open_connection
from common.backoff import backoff_delay
from common.config import RabbitSettings
from common.db import ConnectionPool, DatabaseUnavailable, transaction
from common.outbox import OUTBOX, OutboxTable
from common.secrets import SecretUnavailable
from contract import saga

log = logging.getLogger(__name__)

_DATABASE_ERRORS = (psycopg2.Error, DatabaseUnavailable)
_BROKER_ERRORS = (pika.exceptions.AMQPError, SecretUnavailable, OSError)

class OutboxRelay:
    """Publishes the rows of ``table`` to ``exchange`` on a thread of its own (:meth:`start`, :meth:`stop`)."""

    def __init__(
        self,
        pool: ConnectionPool,
        rabbit: RabbitSettings,
        *,
        table: OutboxTable = OUTBOX,
        exchange: str = saga.EXCHANGE,
        queues: tuple[saga.SagaQueue, ...] = saga.SAGA_QUEUES,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        reconnect_initial: float = 0.1,
        reconnect_max: float = 10.0,
        claim_check_store: claim_check.Store | None = None,
    ):
        self._pool = pool
        self._rabbit = rabbit
        self._table = table
        self._exchange = exchange
        self._queues = queues
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._reconnect = (reconnect_initial, reconnect_max)
        self._claim_check_store = claim_check_store
        self._db: psycopg2.extensions.connection | None = None
        self._broker: pika.BlockingConnection | None = None
        self._channel = None
        self._stopping = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None
        self.last_problem = "not started"

    # -- control (any thread) ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the relay thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"outbox-relay-{self._table.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the batch in flight (its rows are deleted or stay, never half); True if the thread ended."""
        if not self._stopping.is_set():
            # Wake first, then set: the thread closes the pipe only after it saw the event.
            os.write(self._wake_write, b"x")  # wakes the select() of an idle relay at once
            self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # -- the thread ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._ensure_database()
                self.measure()
                self._ensure_broker()
                if self.relay_batch() < self._batch_size:
                    self._wait()
                attempt = 0
                self.last_problem = ""
                continue
            except _DATABASE_ERRORS as exc:
                self.last_problem = f"database: {type(exc).__name__}: {str(exc).strip()}"
                self._close_database()
            except claim_check.StorageUnavailable as exc:  # before the broker's OSError: both connections are fine
                self.last_problem = f"claim-check storage: {exc}"
            except _BROKER_ERRORS as exc:
                self.last_problem = f"broker: {type(exc).__name__}: {str(exc).strip() or repr(exc)}"
                self._close_broker()
            except Exception as exc:  # a bug must not end the thread: logged, then retried
                log.exception("outbox relay failed unexpectedly")
                self.last_problem = f"unexpected {type(exc).__name__}: {exc}"
                self._close_database()
                self._close_broker()
            metrics.OUTBOX_RELAY_FAILURES.labels(self._table.name).inc()
            attempt += 1
            delay = backoff_delay(attempt, *self._reconnect)
            log.warning(
                "outbox relay cannot publish; retrying",
                extra={"outbox": self._table.name, "retry_in_seconds": round(delay, 2), "reason": self.last_problem},
            )
            self._stopping.wait(delay)
        self._close_broker()
        self._close_database()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def relay_batch(self) -> int:
        """Publish up to ``batch_size`` of the oldest unlocked rows with confirms, then delete them in the same
        transaction; returns how many. Rows another relay holds are skipped, not waited for."""
        assert self._db is not None and self._channel is not None
        with transaction(self._db) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT id, event_id, routing_key, body, headers FROM {}"
                    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
                ).format(self._table.identifier),
                (self._batch_size,),
            )
            rows = cur.fetchall()
            for _, event_id, routing_key, body, headers in rows:
                self._publish(event_id, routing_key, bytes(body), headers)
            if rows:
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self._table.identifier),
                    ([row[0] for row in rows],),
                )
        if rows:
            metrics.OUTBOX_PUBLISHED.labels(self._table.name).inc(len(rows))
        return len(rows)

    def _publish(self, event_id: str, routing_key: str, body: bytes, headers: dict) -> None:
        if self._claim_check_store is not None:
            # Over 64 KiB: stored in S3 first, the message carries the reference (an S3 failure raises, the row
            # stays and is retried with the batch).
            body, extra = claim_check.wrap(body, self._claim_check_store)
            headers = {**(headers or {}), **extra}
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=event_id,
            type=routing_key,
            headers=headers or None,
        )
        # Confirm mode: returns once the broker has the message (queued durably); raises NackError when it
        # refuses it and UnroutableError (mandatory) when no queue is bound: the rows then stay for a retry.
        self._channel.basic_publish(self._exchange, routing_key, body, properties, mandatory=True)

    def measure(self) -> None:
        """Set the pending-rows and oldest-age gauges from the table (one cheap query on a small table)."""
        assert self._db is not None
        with self._db.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) FROM {}"
                ).format(self._table.identifier)
            )
            pending, oldest = cur.fetchone()
        metrics.OUTBOX_PENDING.labels(self._table.name).set(pending)
        metrics.OUTBOX_OLDEST_AGE.labels(self._table.name).set(max(0.0, float(oldest)))

    def _wait(self) -> None:
        """Sleep until a notification, ``poll_interval``, or :meth:`stop`; keep the broker connection alive."""
        assert self._db is not None
        if self._db.notifies:  # arrived during the batch (read with its results): rows may be waiting already
            self._db.notifies.clear()
            return
        readable, _, _ = select.select([self._db, self._wake_read], [], [], self._poll_interval)
        if self._db in readable:
            self._db.poll()
            self._db.notifies.clear()
        if self._broker is not None:
            self._broker.process_data_events(0)  # heartbeats; notices a broker that went away

    # -- connections ---------------------------------------------------------------------------------------
    def _ensure_database(self) -> None:
        if self._db is None or self._db.closed:
            self._db = self._pool.dedicated()
            with self._db.cursor() as cur:
                cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._table.channel)))

    def _ensure_broker(self) -> None:
        if self._broker is None or not self._broker.is_open:
            self._broker = open_connection(self._rabbit)
            channel = self._broker.channel()
            declare_saga(channel, self._exchange, self._queues)
            channel.confirm_delivery()
            self._channel = channel

    def _close_database(self) -> None:
        db, self._db = self._db, None
        if db is not None and not db.closed:
            try:
                db.close()
            except psycopg2.Error:
                pass

    def _close_broker(self) -> None:
        broker, self._broker, self._channel = self._broker, None, None
        if broker is not None and broker.is_open:
            try:
                broker.close()
            except (pika.exceptions.AMQPError, OSError):
                pass
