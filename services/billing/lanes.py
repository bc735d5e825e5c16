"""One lane per priority: the queue billing consumes for it, on a channel of its own, and its pending batch.

Billing drains the lanes most urgent first (the priority queue pattern: one queue per priority, because quorum
queues have no message priorities). Each lane has its own channel because a batch is acknowledged with
``basic_ack(multiple=True)`` up to its last delivery tag, and delivery tags are counted per channel: on a
shared channel, acknowledging an express batch stored ahead of older standard deliveries would acknowledge
those too, before they were stored. On its own channel, each lane's batches stay in its own tag order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from billing import metrics
from billing.dead_lettering import DeadLetterPublisher
from billing.delivery import Delivery
from common.config import ConfigError
from contract.messaging import EXPRESS, PRIORITY_QUEUES, Queue

log = logging.getLogger("billing.consumer")

#: BILLING_CONSUME: the priorities each setting consumes, most urgent first.
CONSUME_SETTINGS: dict[str, tuple[str, ...]] = {"all": tuple(PRIORITY_QUEUES), "express": (EXPRESS,)}


def priorities_for(consume: str) -> tuple[str, ...]:
    """The priorities a BILLING_CONSUME value stands for, most urgent first; ConfigError for another value."""
    if consume not in CONSUME_SETTINGS:
        raise ConfigError(f"BILLING_CONSUME must be one of {', '.join(CONSUME_SETTINGS)}, got {consume!r}")
    return CONSUME_SETTINGS[consume]


@dataclass
class Lane:
    """The queue of one priority (as named on this broker), its channel while connected, and its pending batch."""

    priority: str
    queue: Queue
    channel: BlockingChannel | None = None
    dead_letters: DeadLetterPublisher | None = None
    consumer_tag: str | None = None
    pending: list[Delivery] = field(default_factory=list)
    deadline: float = 0.0
    """When the oldest pending delivery has waited ``batch_wait`` for company."""

    def open(self, connection: BlockingConnection, prefetch: int, dead_letter_channel: BlockingChannel) -> None:
        """A channel of its own with ``prefetch`` unacknowledged deliveries at most; dead letters share the
        connection's confirm-mode channel."""
        self.channel = connection.channel()
        self.channel.basic_qos(prefetch_count=prefetch)
        self.dead_letters = DeadLetterPublisher(dead_letter_channel, self.queue)

    def consume(self, on_broker_cancel: Callable, batch_wait: float) -> None:
        """Subscribe to the queue: deliveries collect in ``pending`` until the batch is flushed."""
        assert self.channel is not None

        def on_delivery(_channel, method, properties, body) -> None:
            self.add(Delivery.from_amqp(method, properties, body), batch_wait)

        self.channel.add_on_cancel_callback(on_broker_cancel)
        self.consumer_tag = self.channel.basic_consume(self.queue.name, on_message_callback=on_delivery)

    def add(self, delivery: Delivery, batch_wait: float) -> None:
        """Queue ``delivery`` for the next batch (the first one starts the batch's wait)."""
        if not self.pending:
            self.deadline = time.monotonic() + batch_wait
        self.pending.append(delivery)

    def due(self, batch_size: int) -> bool:
        """True when the pending batch is full or has waited long enough."""
        return bool(self.pending) and (len(self.pending) >= batch_size or time.monotonic() >= self.deadline)

    def take(self) -> list[Delivery]:
        """The pending deliveries, in delivery-tag order; new ones start a new batch."""
        pending, self.pending = self.pending, []
        return pending

    def cancel(self) -> None:
        """Stop the subscription (shutdown): the broker sends nothing more on this lane."""
        if self.channel is not None and self.consumer_tag is not None:
            self.channel.basic_cancel(self.consumer_tag)
        self.consumer_tag = None

    def reset(self) -> None:
        """The connection is gone, with the channel and every unacknowledged delivery (the broker's again)."""
        self.channel = None
        self.dead_letters = None
        self.consumer_tag = None
        self.pending = []

    def report_age(self, batch: list[Delivery]) -> None:
        """Log and record how long the batch's oldest order waited since the gateway published it.

        The AMQP ``timestamp`` (whole seconds, set by the gateway) is the only clock the message carries;
        Amazon MQ publishes queue depths but no message age, so this line is where the age metric of a queue
        comes from (a CloudWatch Logs metric filter on AWS, docs/patterns/priority-queue.md).
        """
        stamps = [d.properties.timestamp for d in batch if isinstance(d.properties.timestamp, int)]
        if not stamps:
            return
        age = max(0.0, round(time.time() - min(stamps), 3))
        metrics.ORDER_AGE.labels(self.priority).observe(age)
        log.info(
            "order batch",
            extra={"priority": self.priority, "queue": self.queue.name, "batch_size": len(batch),
                   "oldest_age_seconds": age},
        )  # fmt: skip
