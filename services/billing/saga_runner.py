"""Billing's saga threads: the outbox relay (publishes ``order.placed``, ``order.confirmed``, ``order.cancelled``)
and the consumer of ``billing.saga`` (``billing.saga.handle_event``), started once ``billing_db`` is migrated.

The consumer records each event in the inbox table before applying it; started before migration 5 ran, it
would find no such table and dead-letter good events. So :meth:`SagaRunner.start` waits (retrying, on a
thread of its own, as the database may be away at start-up) until the schema is in place, then starts both.
"""

from __future__ import annotations

import logging
import threading

from billing.saga import handle_event
from billing.store import OrderStore
from common import claim_check
from common.backoff import backoff_delay
from common.config import RabbitSettings
from common.outbox_relay import OutboxRelay
from common.saga_consumer import SagaConsumer
from contract.saga import BILLING_EVENTS

log = logging.getLogger(__name__)


class SagaNotReady(RuntimeError):
    """The saga consumer is not attached to its queue."""


class SagaRunner:
    """The relay and the saga consumer of one billing process (:meth:`start`, :meth:`stop`, :meth:`check_ready`)."""

    def __init__(self, store: OrderStore, rabbit: RabbitSettings):
        self._store = store
        store_claim, fetch_claim = claim_check.from_env()  # events over 64 KiB by claim check (CLAIM_CHECK_BUCKET)
        self.relay = OutboxRelay(store.pool, rabbit, claim_check_store=store_claim)
        self.consumer = SagaConsumer(store.pool, rabbit, BILLING_EVENTS, handle_event, claim_check_fetch=fetch_claim)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the threads once the schema is in place (returns at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._start_when_migrated, name="billing-saga-start", daemon=True)
            self._thread.start()

    def _start_when_migrated(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._store.check()
                break
            except Exception as exc:  # noqa: BLE001 - the database is away: try again, never give up
                attempt += 1
                log.warning("saga waits for billing_db", extra={"reason": f"{type(exc).__name__}: {exc}"})
                self._stopping.wait(backoff_delay(attempt, 0.5, 10.0))
        with self._lock:
            if not self._stopping.is_set():
                self.relay.start()
                self.consumer.start()

    def stop(self) -> None:
        """Stop the consumer (after the event in hand), then the relay (after the batch in flight)."""
        with self._lock:
            self._stopping.set()
        self.consumer.stop()
        self.relay.stop()

    def check_ready(self) -> None:
        """Raise :class:`SagaNotReady` unless the saga consumer is attached to ``billing.saga`` right now."""
        if not self.consumer.is_consuming:
            raise SagaNotReady(f"saga consumer not attached to {BILLING_EVENTS.name}: {self.consumer.last_problem}")
