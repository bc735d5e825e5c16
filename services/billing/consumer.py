# Over 250 lines: the thread, its connection and the batch loop read best together (parts: batches, legacy, ...).
"""The billing consumer: moves orders from the billing queues into ``billing_db``, in batches, exactly once.

Guarantees, and how they are kept:

- **Nothing is lost.** A delivery is acknowledged only after its row is committed (or after its copy in the
  dead-letter queue is confirmed by the broker). When PostgreSQL or RabbitMQ fails, the connection to the
  broker is dropped, so every unacknowledged delivery goes back to the queue, and the consumer reconnects with
  capped exponential backoff and jitter.
- **No duplicates.** Each row carries the AMQP ``message_id`` under a UNIQUE constraint; a redelivered message
  meets ``ON CONFLICT DO NOTHING``. A message without an id is stored at-least-once and logged as a warning.
- **No poison loops.** A message that can never be stored (bad JSON, bad values, refused by the database, or
  one whose handling raised an unexpected error) is published to ``<queue>.dlq`` with the reason in its
  headers (:mod:`billing.dead_lettering`), then acknowledged.
- **Throughput.** Deliveries are handled in batches (:mod:`billing.batches`: one INSERT, one acknowledgement).
- **Migration.** The legacy classic queue is drained on the standard channel while it exists
  (:mod:`billing.legacy`).
- **Priorities.** Each priority's queue is a lane with a channel of its own (:mod:`billing.lanes`); lanes are
  flushed most urgent first, and before every standard batch the consumer reads what has arrived and stores
  any express order first, so an express order waits for at most the standard batch being written.

pika connections are not thread-safe: everything AMQP happens on the consumer's own thread. The only thing
other threads do is :meth:`OrderConsumer.stop`, which sets an event and wakes the thread with pika's
``add_callback_threadsafe``.
"""

from __future__ import annotations

import logging
import threading
import time

import pika
import pika.exceptions
import psycopg2
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from billing.batches import handle_batch
from billing.delivery import Delivery
from billing.lanes import Lane
from billing.legacy import LegacyQueueDrain
from billing.pacing import RowPacer
from billing.settings import ConsumerSettings, backoff_delay
from billing.shards import Shards
from billing.store import OrderStore
from common.amqp import declare_topology, open_connection
from common.config import RabbitSettings
from common.db import DatabaseUnavailable
from common.secrets import SecretUnavailable
from contract.messaging import PRIORITY_QUEUES, STANDARD

log = logging.getLogger(__name__)

# How often an idle consumer wakes up on its own; stop() wakes it at once anyway.
_IDLE_POLL_SECONDS = 1.0
# Failures that mean "a dependency is away": drop the broker connection, back off, reconnect.
_TRANSIENT_ERRORS = (DatabaseUnavailable, SecretUnavailable, pika.exceptions.AMQPError, OSError)


class ConsumerNotReady(RuntimeError):
    """The consumer is not consuming right now; the message says why (used by ``/ready``)."""


class OrderConsumer:
    """Consumes the billing queues on a thread started by :meth:`start` (gunicorn's ``post_worker_init``)."""

    def __init__(self, store: OrderStore | Shards, rabbit: RabbitSettings, settings: ConsumerSettings):
        # Every shard's store; the database check passes while at least one shard answers (billing.shards).
        self._store = store if isinstance(store, Shards) else Shards([store])
        self._rabbit = rabbit
        self._settings = settings
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: BlockingConnection | None = None
        # Most urgent first: the order in which pending batches are stored.
        self._lanes = [Lane(p, rabbit.queue(PRIORITY_QUEUES[p])) for p in settings.priorities]
        standard = [lane for lane in self._lanes if lane.priority == STANDARD]
        self._standard: Lane | None = standard[0] if standard else None
        self._legacy = LegacyQueueDrain(self._standard.queue.legacy_classic_queue if self._standard else None)
        self._consuming = False
        self._cancelled_by_broker = False
        self._made_progress = False
        self._last_problem = "not started"
        rate = settings.max_rows_per_second
        self._pacer = RowPacer(rate) if rate > 0 else None

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
            raise ConsumerNotReady(f"consumer not attached to {self.queue_names}: {self._last_problem}")

    @property
    def is_consuming(self) -> bool:
        """True while the consumer is attached to its queues."""
        return self._consuming

    @property
    def queue_names(self) -> str:
        """The queues consumed, most urgent first, as one text (logs and readiness)."""
        return ", ".join(lane.queue.name for lane in self._lanes)

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
        # The login is taken (and, when refused, re-read) at every connect: rotation needs no restart.
        self._connection = open_connection(self._rabbit)
        # A separate channel in confirm mode: a dead letter counts as delivered only when the broker says so.
        dead_letter_channel = self._connection.channel()
        declare_topology(dead_letter_channel, self._rabbit)
        dead_letter_channel.confirm_delivery()
        for lane in self._lanes:
            lane.open(self._connection, self._settings.prefetch, dead_letter_channel)

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._legacy.reset()
        # Deliveries not yet acknowledged are the broker's again once the connection is gone.
        for lane in self._lanes:
            lane.reset()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # noqa: BLE001, S110 - already broken; the broker notices the socket closing
                pass

    def _consume(self) -> None:
        assert self._connection is not None
        self._cancelled_by_broker = False
        # The broker cancels consumers of a queue that is deleted (or of a failed-over node): reconnect, which
        # declares the queue again, instead of sitting idle while looking healthy. The most urgent lane
        # subscribes first, so after a restart its backlog is the first to arrive.
        for lane in self._lanes:
            lane.consume(self._on_broker_cancel, self._settings.batch_wait)
        self._attach_legacy()
        self._consuming = True
        self._last_problem = ""
        log.info(
            "billing consumer attached",
            extra={
                "queue": self.queue_names,
                "prefetch": self._settings.prefetch,
                "batch_size": self._settings.batch_size,
                "batch_wait_ms": round(self._settings.batch_wait * 1000),
            },
        )
        while not self._stopping.is_set():
            deadlines = [lane.deadline for lane in self._lanes if lane.pending]
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else _IDLE_POLL_SECONDS
            # Returns as soon as deliveries arrive (they go to their lane) or after ``wait``.
            self._connection.process_data_events(time_limit=wait)
            self._attach_legacy()
            if self._cancelled_by_broker:
                raise pika.exceptions.ConsumerCancelled(f"the broker cancelled a consumer of {self.queue_names}")
            for lane in self._lanes:
                if lane.due(self._settings.batch_size):
                    self._flush(lane)
        self._finish()

    def _attach_legacy(self) -> None:
        if self._standard is not None and self._connection is not None and self._standard.channel is not None:
            self._legacy.attach(self._connection, self._standard.channel, self._on_legacy_delivery)

    def _on_legacy_delivery(
        self, _channel: BlockingChannel, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        # Same channel as the standard queue: one lane, one delivery-tag order.
        assert self._standard is not None
        self._standard.add(Delivery.from_amqp(method, properties, body), self._settings.batch_wait)

    def _finish(self) -> None:
        """Shutdown: cancel the consumers, then finish what was already received, most urgent first."""
        log.info("billing consumer stopping", extra={"in_flight": sum(len(lane.pending) for lane in self._lanes)})
        # After basic_cancel the broker sends nothing more; pika hands back (requeues) anything it received
        # but had not yet dispatched to the lane.
        for lane in self._lanes:
            lane.cancel()
        if self._standard is not None and self._standard.channel is not None:
            self._legacy.cancel(self._standard.channel)
        self._consuming = False
        for lane in self._lanes:
            self._flush(lane, serve_urgent=False)

    def _on_broker_cancel(self, frame: pika.frame.Method) -> None:
        # The legacy queue being deleted is the end of the migration, not a reason to reconnect.
        if not self._legacy.cancelled_by_broker(getattr(frame.method, "consumer_tag", None)):
            self._cancelled_by_broker = True

    def _flush(self, lane: Lane, serve_urgent: bool = True) -> None:
        """Store the lane's pending deliveries in batches; before each batch, serve every more urgent lane."""
        pending = lane.take()
        size = self._settings.batch_size
        for start in range(0, len(pending), size):
            if serve_urgent:
                self._serve_more_urgent_than(lane)
            assert lane.channel is not None and lane.dead_letters is not None
            batch = pending[start : start + size]
            if self._pacer is not None:  # BILLING_MAX_ROWS_PER_SECOND; sleeps keep the connection serviced
                self._pacer.pace(len(batch), self._connection.sleep, self._stopping.is_set)
            lane.report_age(batch)
            handle_batch(batch, self._store, lane.dead_letters, lane.channel)
            self._made_progress = True

    def _serve_more_urgent_than(self, lane: Lane) -> None:
        """Read what has arrived without waiting, then store what more urgent lanes hold (without waiting
        for their batches to fill): an express order never waits behind more than one standard batch."""
        urgent = self._lanes[: self._lanes.index(lane)]
        if not urgent or self._connection is None:
            return
        self._connection.process_data_events(time_limit=0)
        for other in urgent:
            if other.pending:
                self._flush(other, serve_urgent=False)
