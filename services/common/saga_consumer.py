"""A consumer of one saga queue: each event is applied once, in a transaction, and acknowledged after the commit.

For each delivery: parse the envelope (``contract.saga.parse_event``); open a transaction; if
``common.inbox.first_time`` says the event is new, call the handler with the cursor (it changes state and adds
the events it emits with ``common.outbox.add_event``, all in that transaction); commit; acknowledge.

- A body over 64 KiB arrives as a claim check (``common.claim_check``): the event is fetched from S3 and checked
  first; a reference that cannot be redeemed is dead-lettered, S3 being away is transient.
- A malformed message, or one whose handler raises, goes to the queue's dead-letter queue with the reason in
  its headers (as billing's dead letters, ``contract.messaging`` header names), confirmed before the ack; never
  requeued forever.
- The inbox forgets records older than ``inbox_retention_days`` (30), checked hourly by the consumer itself, so
  the table stays bounded in every service (no leader needed).
- When PostgreSQL or RabbitMQ is away the connection is dropped (unacknowledged deliveries go back to the
  queue) and the consumer reconnects with backoff.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pika
import pika.exceptions
import psycopg2.extensions

from common import claim_check
from common.amqp import declare_saga, open_connection
from common.backoff import backoff_delay
from common.config import RabbitSettings
from common.db import CONNECTION_ERRORS, ConnectionPool, DatabaseUnavailable, transaction
from common.inbox import INBOX, InboxTable, first_time, forget_before
from common.secrets import SecretUnavailable
from contract import messaging, saga

log = logging.getLogger(__name__)

#: Applies one event: state change and emitted events through the cursor, inside the consumer's transaction.
Handler = Callable[[psycopg2.extensions.cursor, saga.Event], None]

#: Picks the database an event belongs in (billing's shards); None: the consumer's one pool.
Route = Callable[[saga.Event], ConnectionPool]
#: Asked when applying an event failed because its database is away: (kind, reason, extra headers) to park the
#: event in the dead-letter queue (someone re-drives it later), or None to treat the failure as transient.
Park = Callable[[saga.Event, Exception], "tuple[str, str, dict] | None"]

#: How often a consumer forgets old inbox records.
PRUNE_INTERVAL_SECONDS = 3600.0

_TRANSIENT = (DatabaseUnavailable, SecretUnavailable, pika.exceptions.AMQPError, OSError, *CONNECTION_ERRORS)
_MAX_REASON = 500


class SagaConsumer:
    """Consumes ``queue`` on a thread of its own (:meth:`start`, :meth:`stop`), applying events with ``handler``."""

    def __init__(
        self,
        pool: ConnectionPool,
        rabbit: RabbitSettings,
        queue: saga.SagaQueue,
        handler: Handler,
        *,
        exchange: str = saga.EXCHANGE,
        inbox: InboxTable = INBOX,
        prefetch: int = 20,
        reconnect_initial: float = 0.1,
        reconnect_max: float = 10.0,
        claim_check_fetch: claim_check.Fetch | None = None,
        database_check: Callable[[], None] | None = None,
        inbox_retention_days: int = 30,
        route: Route | None = None,
        park: Park | None = None,
        pools: Sequence[ConnectionPool] | None = None,
    ):
        self._pool = pool
        # Sharded databases (billing): ``route`` picks each event's, ``park`` sets aside the events of one that is
        # away, and ``pools`` lists every database whose inbox is pruned.
        self._route = route
        self._park = park
        self._pools = list(pools) if pools else [pool]
        # Raises while the database cannot take events: unreachable, or (the services pass their migration
        # check) without the inbox and the handler's tables yet.
        self._database_check = database_check or pool.ping
        self._retention_days = inbox_retention_days
        self._next_prune = 0.0
        self._fetch = claim_check_fetch
        self._rabbit = rabbit
        self._queue = queue
        self._handler = handler
        self._exchange = exchange
        self._inbox = inbox
        self._prefetch = prefetch
        self._reconnect = (reconnect_initial, reconnect_max)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: pika.BlockingConnection | None = None
        self.is_consuming = False
        self.last_problem = "not started"

    def start(self) -> None:
        """Start the consumer thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"saga-{self._queue.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the event in hand; True if the thread ended within ``timeout``."""
        self._stopping.set()
        connection = self._connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(lambda: None)  # wakes process_data_events
            except Exception:  # noqa: BLE001, S110 - already closed: the thread sees the event
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._database_check()  # database first: taking events that cannot be applied would only bounce them
                self._connection = open_connection(self._rabbit)
                channel = self._connection.channel()
                declare_saga(channel, self._exchange, (self._queue,))
                channel.basic_qos(prefetch_count=self._prefetch)
                dead_letters = self._connection.channel()
                dead_letters.confirm_delivery()
                channel.basic_consume(
                    self._queue.name,
                    functools.partial(self._on_message, dead_letters=dead_letters),
                )
                self.is_consuming, self.last_problem, attempt = True, "", 0
                while not self._stopping.is_set():
                    self._connection.process_data_events(time_limit=1)
                    self._prune_when_due()
            except _TRANSIENT as exc:
                self.last_problem = f"{type(exc).__name__}: {str(exc).strip() or repr(exc)}"
            except Exception as exc:  # a bug must not end the thread: logged, then retried
                log.exception("saga consumer failed unexpectedly", extra={"queue": self._queue.name})
                self.last_problem = f"unexpected {type(exc).__name__}: {exc}"
            finally:
                self.is_consuming = False
                self._close()
            if self._stopping.is_set():
                break
            attempt += 1
            delay = backoff_delay(attempt, *self._reconnect)
            log.warning(
                "saga consumer cannot run; retrying", extra={"queue": self._queue.name, "reason": self.last_problem}
            )
            self._stopping.wait(delay)

    def _on_message(self, channel, method, properties, body: bytes, *, dead_letters) -> None:
        try:
            event = saga.parse_event(
                self._redeem(body, properties.headers), message_id=properties.message_id,
                routing_key=method.routing_key,
            )
        except saga.InvalidEvent as exc:
            self._dead_letter(dead_letters, properties, body, exc.kind, str(exc))
        except claim_check.ClaimCheckError as exc:
            self._dead_letter(dead_letters, properties, body, f"claim_check_{exc.kind}", str(exc))
        else:
            try:
                failure = self._apply(event)
            except _TRANSIENT as exc:
                parked = self._park(event, exc) if self._park is not None else None
                if parked is None:
                    raise
                kind, reason, extra = parked
                self._dead_letter(dead_letters, properties, body, kind, reason, extra)
            else:
                if failure is not None:
                    self._dead_letter(dead_letters, properties, body, *failure)
        channel.basic_ack(method.delivery_tag)

    def _prune_when_due(self) -> None:
        """Forget inbox records older than the retention, once an hour (every consumer of the database may: the
        DELETE is idempotent). Keep the retention far longer than any redelivery or dead-letter replay takes."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        for pool in self._pools:
            try:
                with pool.connection() as conn, transaction(conn) as cur:
                    forgotten = forget_before(cur, self._retention_days, table=self._inbox)
            except DatabaseUnavailable as exc:
                if len(self._pools) == 1:
                    raise
                # One shard away: prune the others now, that one at the next round.
                log.warning("inbox not pruned: database away", extra={"queue": self._queue.name, "reason": str(exc)})
                continue
            if forgotten:
                log.info("inbox records forgotten", extra={"queue": self._queue.name, "records": forgotten})

    def _redeem(self, body: bytes, headers) -> bytes:
        """The event's body: ``body``, or the S3 object a claim check names (size and sha256 checked). S3 away
        raises StorageUnavailable (a ConnectionError: transient, the message is redelivered)."""
        if not claim_check.is_claim_check(headers):
            return body
        if self._fetch is None:
            raise claim_check.ClaimCheckError("a claim check arrived but this consumer has no claim-check bucket",
                                              "unconfigured")
        return claim_check.unwrap(body, headers, self._fetch)

    def _apply(self, event: saga.Event) -> tuple[str, str] | None:
        """Apply ``event`` once and commit; (kind, reason) when the handler refused it. Transient failures raise:
        the connection is dropped and the event redelivered (a deadlock or serialization failure is one: psycopg2
        reports them as OperationalError, which the pool turns into DatabaseUnavailable). The queue's delivery
        limit bounds those redeliveries."""
        try:
            pool = self._route(event) if self._route is not None else self._pool
            with pool.connection() as conn, transaction(conn) as cur:
                if first_time(cur, event.event_id, self._queue.name, table=self._inbox):
                    self._handler(cur, event)
        except _TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - the handler refused the event: dead-letter it with why
            return "handler_failed", f"{type(exc).__name__}: {str(exc).strip()}"
        return None

    def _dead_letter(
        self, channel, properties: pika.BasicProperties, body: bytes, kind: str, reason: str, extra: dict | None = None
    ) -> None:
        """Publish the message with its reason to the dead-letter queue and wait for the broker's confirm."""
        headers = {
            **(properties.headers or {}),
            messaging.DEAD_LETTER_REASON: reason[:_MAX_REASON],
            messaging.DEAD_LETTER_KIND: kind,
            messaging.ORIGINAL_MESSAGE_ID: properties.message_id or "",
            messaging.ORIGINAL_QUEUE: self._queue.name,
            messaging.DEAD_LETTERED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
            **(extra or {}),
        }
        copy = pika.BasicProperties(
            content_type=properties.content_type, headers=headers, delivery_mode=pika.DeliveryMode.Persistent,
            message_id=properties.message_id, type=properties.type,
        )
        channel.basic_publish(messaging.DEFAULT_EXCHANGE, self._queue.dead_letter_queue, body, copy, mandatory=True)
        log.warning("saga event dead-lettered", extra={"queue": self._queue.name, "kind": kind, "reason": reason[:200]})

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass
