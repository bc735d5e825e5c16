"""Billing's saga threads: the outbox relay (publishes ``order.placed``, ``order.confirmed``, ``order.cancelled``)
and the consumer of ``billing.saga`` (``billing.saga.handle_event``).

The consumer records each event in the inbox table before applying it; attached before migration 5 ran, it
would find no such table and dead-letter good events. So its database check is the store's (reachable and
migrated): until that passes it backs off and retries, taking nothing. The relay needs no such care: a missing
outbox table is a database error it retries.
"""

from __future__ import annotations

from billing.saga import handle_event
from billing.store import OrderStore
from common import claim_check
from common.config import RabbitSettings
from common.outbox_relay import OutboxRelay
from common.saga_consumer import SagaConsumer
from contract.saga import BILLING_EVENTS


class SagaNotReady(RuntimeError):
    """The saga consumer is not attached to its queue."""


class SagaRunner:
    """The relay and the saga consumer of one billing process (:meth:`start`, :meth:`stop`, :meth:`check_ready`)."""

    def __init__(self, store: OrderStore, rabbit: RabbitSettings):
        self._store = store
        store_claim, fetch_claim = claim_check.from_env()  # events over 64 KiB by claim check (CLAIM_CHECK_BUCKET)
        self.relay = OutboxRelay(store.pool, rabbit, claim_check_store=store_claim)
        self.consumer = SagaConsumer(
            store.pool, rabbit, BILLING_EVENTS, handle_event,
            claim_check_fetch=fetch_claim, database_check=store.check,
        )

    def start(self) -> None:
        """Start the relay and the consumer threads (returns at once)."""
        self.relay.start()
        self.consumer.start()

    def stop(self) -> None:
        """Stop the consumer (after the event in hand), then the relay (after the batch in flight)."""
        self.consumer.stop()
        self.relay.stop()

    def check_ready(self) -> None:
        """Raise :class:`SagaNotReady` unless the saga consumer is attached to ``billing.saga`` right now."""
        if not self.consumer.is_consuming:
            raise SagaNotReady(f"saga consumer not attached to {BILLING_EVENTS.name}: {self.consumer.last_problem}")
