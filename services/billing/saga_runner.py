"""Billing's saga threads: one outbox relay per shard (publishes ``order.placed``, ``order.confirmed``,
``order.cancelled``) and the consumer of ``billing.saga`` (``billing.saga.handle_event``).

The consumer records each event in the inbox table before applying it; attached before migration 5 ran, it
would find no such table and dead-letter good events. So its database check is the shards' (at least one
reachable and migrated): until that passes it backs off and retries, taking nothing. The relays need no such
care: a missing outbox table is a database error each retries on its own.

Sharding (docs/patterns/sharding.md): an event is applied in the shard of the order's principal, which
``stock.reserved``, ``stock.rejected`` and ``invoice.ready`` carry back in ``data.principal`` (inventory and the
invoicer echo the principal of the event they answer). An event without it (from a publisher older than the
shards) is looked up shard by shard. An event whose shard is away is parked in ``billing.saga.dlq`` (kind
``shard_unavailable``) while another shard answers; the leader re-drives it once its shard is back.
"""

from __future__ import annotations

import logging

from billing.purchases import ANONYMOUS
from billing.saga import handle_event
from billing.shards import Shards
from billing.store import OrderStore
from common import claim_check
from common.config import RabbitSettings
from common.db import ConnectionPool, DatabaseUnavailable
from common.outbox_relay import OutboxRelay
from common.saga_consumer import SagaConsumer
from contract import messaging, saga
from contract.saga import BILLING_EVENTS

log = logging.getLogger(__name__)


def event_shard(shards: Shards, event: saga.Event) -> int | None:
    """The shard of the order ``event`` is about, from the principal it carries in ``data.principal.sub``
    (``anonymous``: an order placed without one); None when it carries none."""
    principal = event.data.get("principal")
    sub = principal.get("sub") if isinstance(principal, dict) else None
    if not isinstance(sub, str) or not sub:
        return None
    return shards.index_for(None if sub == ANONYMOUS else sub)


class SagaNotReady(RuntimeError):
    """The saga consumer is not attached to its queue."""


class SagaRunner:
    """The relays and the saga consumer of one billing process (:meth:`start`, :meth:`stop`, :meth:`check_ready`)."""

    def __init__(self, store: OrderStore | Shards, rabbit: RabbitSettings):
        self._shards = store if isinstance(store, Shards) else Shards([store])
        store_claim, fetch_claim = claim_check.from_env()  # events over 64 KiB by claim check (CLAIM_CHECK_BUCKET)
        # One relay per shard: each shard's outbox is committed with that shard's orders.
        self.relays = [
            OutboxRelay(shard.pool, rabbit, claim_check_store=store_claim) for shard in self._shards.stores
        ]
        self.relay = self.relays[0]
        self.consumer = SagaConsumer(
            self._shards.stores[0].pool, rabbit, BILLING_EVENTS, handle_event,
            claim_check_fetch=fetch_claim, database_check=self._shards.check,
            route=self.route if self._shards.count > 1 else None,
            park=self.park if self._shards.count > 1 else None,
            pools=[shard.pool for shard in self._shards.stores],
        )

    def shard_of(self, event: saga.Event) -> int | None:
        """The shard of the order ``event`` is about (:func:`event_shard`)."""
        return event_shard(self._shards, event)

    def route(self, event: saga.Event) -> ConnectionPool:
        """The pool of the shard holding the event's order."""
        shard = self.shard_of(event)
        if shard is None:
            shard = self._find(event.order_id)
        # Migrated before first use: a shard away when the process started has no inbox table until now.
        self._shards.stores[shard].check()
        return self._shards.stores[shard].pool

    def _find(self, order_id: str) -> int:
        """The shard holding ``order_id``, asked shard by shard (events from publishers that send no principal);
        shard 0 when none has it (the handler then refuses the event as an unknown order)."""
        for shard, store in enumerate(self._shards.stores):
            store.check()
            with store.pool.connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1 FROM orders WHERE message_id = %s", (order_id,))
                if cur.fetchone() is not None:
                    return shard
        return 0

    def park(self, event: saga.Event, exc: Exception) -> tuple[str, str, dict] | None:
        """Park an event whose shard is away (while another shard answers); None: a transient failure."""
        shard = self.shard_of(event)
        if shard is None or not isinstance(exc, DatabaseUnavailable):
            return None
        self._shards.mark_down(shard, str(exc))
        if not self._shards.any_other_answers(shard):
            return None  # every shard away: wait at the broker, as with one database
        reason = f"billing shard {shard} is unavailable ({exc}); re-driven by the leader once it answers"
        return messaging.SHARD_UNAVAILABLE_KIND, reason, {messaging.BILLING_SHARD: shard}

    def start(self) -> None:
        """Start the relays and the consumer threads (returns at once)."""
        for relay in self.relays:
            relay.start()
        self.consumer.start()

    def stop(self) -> None:
        """Stop the consumer (after the event in hand), then the relays (after the batch in flight)."""
        self.consumer.stop()
        for relay in self.relays:
            relay.stop()

    def check_ready(self) -> None:
        """Raise :class:`SagaNotReady` unless the saga consumer is attached to ``billing.saga`` right now."""
        if not self.consumer.is_consuming:
            raise SagaNotReady(f"saga consumer not attached to {BILLING_EVENTS.name}: {self.consumer.last_problem}")
