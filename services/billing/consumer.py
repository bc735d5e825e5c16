"""The billing consumer: moves orders from ``billing_queue`` into ``billing_db``, in batches, exactly once.

Guarantees, and how they are kept:

- **Nothing is lost.** A delivery is acknowledged only after its row is committed (or after its copy in the
  dead-letter queue is confirmed by the broker). When PostgreSQL or RabbitMQ fails, the connection to the
  broker is dropped, so every unacknowledged delivery goes back to the queue, and the consumer reconnects with
  capped exponential backoff and jitter.
- **No duplicates.** Each row carries the AMQP ``message_id`` under a UNIQUE constraint; a redelivered message
  meets ``ON CONFLICT DO NOTHING``. A message without an id is stored at-least-once and logged as a warning.
- **No poison loops.** A message that can never be stored (bad JSON, bad values, refused by the database, or
  one whose handling raised an unexpected error) is published to ``<queue>.dlq`` with the reason in its
  headers, then acknowledged.
- **Throughput.** Up to ``batch_size`` deliveries (or whatever arrived within ``batch_wait`` of the first) are
  written by one multi-row INSERT and acknowledged with one ``basic_ack(multiple=True)``; per-message commits
  would cap the consumer near 1,000 rows/s.

pika connections are not thread-safe: everything AMQP happens on the consumer's own thread. The only thing
other threads do is :meth:`OrderConsumer.stop`, which sets an event and wakes the thread with pika's
``add_callback_threadsafe``.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pika
import pika.exceptions
import psycopg2
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from billing.orders import InvalidOrder, parse_order
from billing.settings import ConsumerSettings
from billing.store import OrderRecord, OrderStore
from common import metrics
from common.amqp import connection_parameters, declare_topology
from common.config import RabbitSettings
from common.db import DatabaseUnavailable
from common.log import request_id_var
from common.web import accept_request_id

log = logging.getLogger(__name__)

#: Headers added to a dead-lettered message (the original headers are kept alongside).
REASON_HEADER = "x-dead-letter-reason"
KIND_HEADER = "x-dead-letter-kind"
ORIGINAL_MESSAGE_ID_HEADER = "x-original-message-id"
ORIGINAL_QUEUE_HEADER = "x-original-queue"
DEAD_LETTERED_AT_HEADER = "x-dead-lettered-at"
REQUEST_ID_HEADER = "x-request-id"

# A reason quotes the offending value; keep the header small whatever the message held.
_MAX_REASON_LENGTH = 500
# How often an idle consumer wakes up on its own; stop() wakes it at once anyway.
_IDLE_POLL_SECONDS = 1.0
# Failures that mean "a dependency is away": drop the broker connection, back off, reconnect.
_TRANSIENT_ERRORS = (DatabaseUnavailable, pika.exceptions.AMQPError, OSError)
# Errors that one row's data can cause (constraint violations, values PostgreSQL cannot take). Any other
# database error (missing table, permissions, ...) is a problem of the system, not of the message: the batch
# is retried after a backoff instead of dead-lettering every order while it lasts.
_ROW_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError, TypeError, ValueError)


class ConsumerNotReady(RuntimeError):
    """The consumer is not consuming right now; the message says why (used by ``/ready``)."""


@dataclass(frozen=True)
class Delivery:
    """One message as received, plus the ids taken from its properties."""

    delivery_tag: int
    properties: pika.BasicProperties
    body: bytes
    message_id: str | None
    request_id: str

    @classmethod
    def from_amqp(cls, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes) -> Delivery:
        """Capture a delivery; the request id comes from the ``x-request-id`` header (fresh if absent/invalid)."""
        raw = (properties.headers or {}).get(REQUEST_ID_HEADER)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        return cls(
            delivery_tag=method.delivery_tag,
            properties=properties,
            body=body,
            message_id=properties.message_id or None,
            request_id=accept_request_id(raw if isinstance(raw, str) else None),
        )


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Make every log line inside the block carry ``request_id``."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Delay before reconnect attempt ``attempt`` (1, 2, ...): exponential, capped, with "equal jitter".

    Half of the delay is fixed and half random, so many tasks that lost the same broker do not come back in
    lockstep, yet none retries immediately.
    """
    ceiling = min(maximum, initial * 2 ** min(attempt - 1, 32))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography


class OrderConsumer:
    """Consumes ``billing_queue`` on a background thread; see the module docstring for the guarantees."""

    def __init__(self, store: OrderStore, rabbit: RabbitSettings, settings: ConsumerSettings):
        self._store = store
        self._rabbit = rabbit
        self._settings = settings
        self._parameters = connection_parameters(rabbit)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._dead_letter_channel: BlockingChannel | None = None
        self._consumer_tag: str | None = None
        self._pending: list[Delivery] = []
        self._batch_deadline = 0.0
        self._consuming = False
        self._cancelled_by_broker = False
        self._made_progress = False
        self._last_problem = "not started"

    # ----------------------------------------------------------------------------------------------------
    # Control, called from other threads

    def start(self) -> None:
        """Start the consumer thread (once)."""
        if self._thread is not None:
            return
        # Daemon: a consumer stuck on a dead socket must not keep the process alive; stop() joins it.
        self._thread = threading.Thread(target=self._run, name="billing-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop consuming, finish the in-flight batch (commit + ack), close connections, join the thread.

        Returns True when the thread ended within ``timeout`` (default: the configured shutdown timeout).
        Whatever was not acknowledged by then is redelivered by the broker when the process exits.
        """
        self._stopping.set()
        connection = self._connection
        if connection is not None:
            try:
                # The only pika call that is safe from another thread: wakes process_data_events up.
                connection.add_callback_threadsafe(lambda: None)
            except Exception:  # noqa: BLE001, S110 - connection already closed: the thread will notice the event
                pass
        thread = self._thread
        if thread is None:
            return True
        thread.join(self._settings.shutdown_timeout if timeout is None else timeout)
        if thread.is_alive():
            log.error("billing consumer did not stop in time; unacknowledged messages will be redelivered")
            return False
        return True

    def check_ready(self) -> None:
        """Raise :class:`ConsumerNotReady` unless the consumer is attached to the queue right now."""
        if not self._consuming:
            raise ConsumerNotReady(f"consumer not attached to {self._rabbit.queue}: {self._last_problem}")

    @property
    def is_consuming(self) -> bool:
        """True while the consumer is attached to the queue."""
        return self._consuming

    # ----------------------------------------------------------------------------------------------------
    # The consumer thread

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            connected_at: float | None = None
            self._made_progress = False
            try:
                # Database first: pulling messages that cannot be stored would only bounce them back.
                self._store.check()
                self._connect()
                connected_at = time.monotonic()
                self._consume()
            except _TRANSIENT_ERRORS as exc:
                # pika's connection errors have an empty str(); their repr names the underlying socket error.
                text = str(exc).strip()
                problem = f"{type(exc).__name__}: {text}" if text else repr(exc)
            except psycopg2.Error as exc:
                problem = f"database error {type(exc).__name__}: {str(exc).strip()}"
            except Exception as exc:  # a bug must not kill the thread: it is logged, then retried
                log.exception("billing consumer failed unexpectedly")
                problem = f"unexpected {type(exc).__name__}: {exc}"
            else:
                continue  # _consume returns only when stopping
            finally:
                self._consuming = False
                # Closing the connection hands every unacknowledged delivery back to the queue.
                self._disconnect()
            self._last_problem = problem
            if self._stopping.is_set():
                break
            # Start the backoff over only after a real recovery: a consumer that connects and then fails on
            # every batch (say, a missing table) must not retry at the initial rate forever.
            if self._made_progress or (
                connected_at is not None and time.monotonic() - connected_at > self._settings.reconnect_max
            ):
                attempt = 0
            attempt += 1
            delay = backoff_delay(attempt, self._settings.reconnect_initial, self._settings.reconnect_max)
            log.warning(
                "billing consumer cannot run; retrying",
                extra={"attempt": attempt, "retry_in_seconds": round(delay, 2), "reason": problem},
            )
            self._stopping.wait(delay)
        self._last_problem = "stopped"
        log.info("billing consumer stopped")

    def _connect(self) -> None:
        self._connection = pika.BlockingConnection(self._parameters)
        self._channel = self._connection.channel()
        declare_topology(self._channel, self._rabbit)
        self._channel.basic_qos(prefetch_count=self._settings.prefetch)
        # A separate channel in confirm mode: a dead letter counts as delivered only when the broker says so.
        self._dead_letter_channel = self._connection.channel()
        self._dead_letter_channel.confirm_delivery()

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._dead_letter_channel = None
        self._consumer_tag = None
        # Deliveries not yet acknowledged are the broker's again once the connection is gone.
        self._pending = []
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # noqa: BLE001, S110 - already broken; the broker notices the socket closing
                pass

    def _consume(self) -> None:
        assert self._connection is not None and self._channel is not None
        self._cancelled_by_broker = False
        # The broker cancels consumers of a queue that is deleted (or of a failed-over node): reconnect, which
        # declares the queue again, instead of sitting idle while looking healthy.
        self._channel.add_on_cancel_callback(self._on_broker_cancel)
        self._consumer_tag = self._channel.basic_consume(self._rabbit.queue, on_message_callback=self._on_delivery)
        self._consuming = True
        self._last_problem = ""
        log.info(
            "billing consumer attached",
            extra={
                "queue": self._rabbit.queue,
                "prefetch": self._settings.prefetch,
                "batch_size": self._settings.batch_size,
                "batch_wait_ms": round(self._settings.batch_wait * 1000),
            },
        )
        while not self._stopping.is_set():
            if self._pending:
                wait = max(0.0, self._batch_deadline - time.monotonic())
            else:
                wait = _IDLE_POLL_SECONDS
            # Returns as soon as deliveries arrive (they go to _on_delivery) or after ``wait``.
            self._connection.process_data_events(time_limit=wait)
            if self._cancelled_by_broker:
                raise pika.exceptions.ConsumerCancelled(f"the broker cancelled the consumer of {self._rabbit.queue}")
            if self._pending and (
                len(self._pending) >= self._settings.batch_size or time.monotonic() >= self._batch_deadline
            ):
                self._flush()
        self._finish()

    def _finish(self) -> None:
        """Shutdown: cancel the consumer, then finish what was already received."""
        assert self._channel is not None
        log.info("billing consumer stopping", extra={"in_flight": len(self._pending)})
        # After basic_cancel the broker sends nothing more; pika hands back (requeues) anything it received
        # but had not yet dispatched to _on_delivery.
        self._channel.basic_cancel(self._consumer_tag)
        self._consuming = False
        self._flush()

    def _on_broker_cancel(self, _method: object) -> None:
        self._cancelled_by_broker = True

    def _on_delivery(
        self, _channel: BlockingChannel, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        if not self._pending:
            self._batch_deadline = time.monotonic() + self._settings.batch_wait
        self._pending.append(Delivery.from_amqp(method, properties, body))

    # ----------------------------------------------------------------------------------------------------
    # Batches

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        size = self._settings.batch_size
        for start in range(0, len(pending), size):
            self._handle_batch(pending[start : start + size])

    def _handle_batch(self, batch: Sequence[Delivery]) -> None:
        """Store, dead-letter, then acknowledge one batch. Raises (without acking) when a dependency fails."""
        assert self._channel is not None
        started = time.perf_counter()
        valid: list[tuple[Delivery, OrderRecord]] = []
        rejected: list[tuple[Delivery, str, str]] = []
        for delivery in batch:
            try:
                order = parse_order(delivery.body)
            except InvalidOrder as exc:
                rejected.append((delivery, exc.kind, str(exc)))
            except Exception as exc:  # an unexpected error must dead-letter, not loop forever
                with request_context(delivery.request_id):
                    log.exception("unexpected error while validating a message")
                rejected.append((delivery, "internal_error", f"{type(exc).__name__}: {exc}"))
            else:
                valid.append((delivery, OrderRecord(order, delivery.message_id, delivery.request_id)))

        stored, refused = self._store_records(valid)
        rejected.extend(refused)
        for delivery, kind, reason in rejected:
            self._dead_letter(delivery, kind, reason)
        # Everything up to the last tag is now either committed or safely in the dead-letter queue.
        self._channel.basic_ack(delivery_tag=batch[-1].delivery_tag, multiple=True)
        self._made_progress = True

        self._report(stored, rejected)
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.BATCH_DURATION.observe(time.perf_counter() - started)

    def _store_records(
        self, valid: Sequence[tuple[Delivery, OrderRecord]]
    ) -> tuple[list[tuple[Delivery, bool]], list[tuple[Delivery, str, str]]]:
        """Insert the batch; if the database refuses it, retry row by row to isolate the culprit(s).

        Returns (delivery, newly stored?) pairs and (delivery, kind, reason) for rows the database refused.
        Other failures propagate: nothing is acknowledged and the batch is redelivered after a reconnect.
        """
        if not valid:
            return [], []
        try:
            outcome = self._store.insert([record for _, record in valid])
            return [(delivery, new) for (delivery, _), new in zip(valid, outcome, strict=True)], []
        except _ROW_ERRORS as exc:  # a data error in one row must not block the other rows
            log.warning(
                "database refused a batch; storing its rows one by one",
                extra={"batch_size": len(valid), "reason": f"{type(exc).__name__}: {str(exc).strip()}"},
            )
        stored: list[tuple[Delivery, bool]] = []
        refused: list[tuple[Delivery, str, str]] = []
        for delivery, record in valid:
            try:
                stored.append((delivery, self._store.insert([record])[0]))
            except _ROW_ERRORS as exc:  # this row is the poison; dead-letter it with the reason
                refused.append((delivery, "rejected_by_database", f"{type(exc).__name__}: {str(exc).strip()}"))
        return stored, refused

    def _dead_letter(self, delivery: Delivery, kind: str, reason: str) -> None:
        """Publish the original body and headers, plus the reason, to the dead-letter queue; wait for the confirm."""
        assert self._dead_letter_channel is not None
        try:
            self._publish_dead_letter(delivery, kind, reason, keep_headers=True)
        except (TypeError, ValueError, struct.error) as exc:
            # pika could not re-encode the original headers (an exotic publisher). Dropping them beats a poison
            # message that can never leave the queue.
            with request_context(delivery.request_id):
                log.warning("original headers not encodable; dead-lettering without them", extra={"error": str(exc)})
            self._publish_dead_letter(delivery, kind, reason, keep_headers=False)
        metrics.MESSAGES_DEAD_LETTERED.labels(kind).inc()
        with request_context(delivery.request_id):
            log.warning(
                "order dead-lettered",
                extra={"message_id": delivery.message_id, "kind": kind, "reason": reason[:_MAX_REASON_LENGTH]},
            )

    def _publish_dead_letter(self, delivery: Delivery, kind: str, reason: str, keep_headers: bool) -> None:
        assert self._dead_letter_channel is not None
        original = delivery.properties
        headers = {
            **((original.headers or {}) if keep_headers else {}),
            REASON_HEADER: reason[:_MAX_REASON_LENGTH],
            KIND_HEADER: kind,
            ORIGINAL_MESSAGE_ID_HEADER: delivery.message_id or "",
            ORIGINAL_QUEUE_HEADER: self._rabbit.queue,
            REQUEST_ID_HEADER: delivery.request_id,
            DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        properties = pika.BasicProperties(
            content_type=original.content_type,
            content_encoding=original.content_encoding,
            headers=headers,
            delivery_mode=pika.DeliveryMode.Persistent,
            # Same message id: replaying the message into billing_queue keeps it idempotent.
            message_id=original.message_id,
            correlation_id=original.correlation_id,
            timestamp=original.timestamp,
            type=original.type,
            app_id=original.app_id,
        )
        # mandatory: if the dead-letter queue is missing, the broker returns the message and pika raises
        # UnroutableError; the original then stays unacknowledged and is retried after a reconnect.
        self._dead_letter_channel.basic_publish(
            exchange="",
            routing_key=self._rabbit.dead_letter_queue,
            body=delivery.body,
            properties=properties,
            mandatory=True,
        )

    def _report(self, stored: Sequence[tuple[Delivery, bool]], rejected: Sequence[tuple[Delivery, str, str]]) -> None:
        """One log line per order (carrying its request id) and the consumed-messages counters."""
        new = 0
        for delivery, is_new in stored:
            with request_context(delivery.request_id):
                if delivery.message_id is None:
                    log.warning("order stored without a message_id: a redelivery of it would be stored again")
                elif is_new:
                    log.info("order stored", extra={"message_id": delivery.message_id})
                else:
                    log.info("duplicate order ignored", extra={"message_id": delivery.message_id})
            new += is_new
        if new:
            metrics.MESSAGES_CONSUMED.labels("stored").inc(new)
        if len(stored) - new:
            metrics.MESSAGES_CONSUMED.labels("duplicate").inc(len(stored) - new)
        if rejected:
            metrics.MESSAGES_CONSUMED.labels("dead_lettered").inc(len(rejected))
