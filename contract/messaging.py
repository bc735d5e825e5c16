"""What travels between the services: queues, message headers and the HTTP request-id header.

Orders go from the gateway to billing through the default exchange (routing key = queue name). Every queue
has a dead-letter queue that keeps, with the reason in its headers, each message its consumer can never
process.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Queue:
    """A durable quorum queue, who publishes to it and who consumes it.

    Quorum queues are replicated (RabbitMQ 4 on Amazon MQ requires them) and count deliveries: a message
    delivered ``delivery_limit`` times without being acknowledged (its consumer crashed on it, again and
    again) is dead-lettered by the broker instead of being redelivered forever. Every publisher and consumer
    declares the queue with exactly ``arguments()``; RabbitMQ refuses a declaration whose arguments differ.
    """

    name: str
    consumer: str
    publishers: tuple[str, ...]
    description: str
    delivery_limit: int = 5
    legacy_classic_queue: str | None = None
    """The classic queue this one replaces: consumers drain it until it is empty, publishers no longer use it
    (a queue's type cannot change in place; see docs/operations.md, "Queue migration")."""

    @property
    def dead_letter_queue(self) -> str:
        """Where the consumer (or the broker, past the delivery limit) moves messages that cannot be processed."""
        return f"{self.name}.dlq"

    @property
    def routing_key(self) -> str:
        """Published through the default exchange, whose routing key is the queue name."""
        return self.name

    def arguments(self) -> dict[str, object]:
        """The declaration arguments of the queue itself."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            # Past the limit the broker moves the message to the dead-letter queue, safely (at-least-once
            # dead-lettering needs reject-publish overflow; the queue has no length limit, so it never rejects).
            "x-dead-letter-exchange": DEFAULT_EXCHANGE,
            "x-dead-letter-routing-key": self.dead_letter_queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    @property
    def legacy_dead_letter_queue(self) -> str | None:
        """The dead-letter queue of the legacy classic queue: its dead letters are listed and replayed too."""
        return f"{self.legacy_classic_queue}.dlq" if self.legacy_classic_queue else None

    @staticmethod
    def dead_letter_arguments() -> dict[str, object]:
        """The declaration arguments of the dead-letter queue (a quorum queue too, kept until replayed)."""
        # An explicit, practically unreachable limit: RabbitMQ 4.0+ gives quorum queues a default limit of 20,
        # and every `billing.deadletters list` hands its dead letters back (a return counts up to 4.2), so a
        # dead letter listed 20 times would be dropped (this queue has no dead-letter target). The value -1
        # ("no limit" on 4.x) is no option: RabbitMQ 3.10 drops the message at its first delivery.
        return {"x-queue-type": "quorum", "x-delivery-limit": DEAD_LETTER_DELIVERY_LIMIT}


BILLING_QUEUE = Queue(
    "billing.orders",
    consumer="billing",
    publishers=("gateway",),
    description="Orders accepted by POST /api/billing, waiting to be stored in billing_db.",
    legacy_classic_queue="billing_queue",
)

EXPRESS_QUEUE = Queue(
    "billing.orders.express",
    consumer="billing",
    publishers=("gateway",),
    description="Orders posted with \"priority\": \"express\": billing consumes them ahead of billing.orders.",
)

QUEUES: tuple[Queue, ...] = (BILLING_QUEUE, EXPRESS_QUEUE)

# --- order priorities (the priority queue pattern: one queue per priority, docs/patterns) -----------------
#: An order's ``priority`` when it names none.
STANDARD = "standard"
#: Orders stored ahead of every standard one waiting (``EXPRESS_QUEUE``).
EXPRESS = "express"
DEFAULT_PRIORITY = STANDARD
#: The queue of each priority, most urgent first: the order in which billing drains them.
PRIORITY_QUEUES: dict[str, Queue] = {EXPRESS: EXPRESS_QUEUE, STANDARD: BILLING_QUEUE}

#: The default exchange: messages are routed to the queue named by the routing key.
DEFAULT_EXCHANGE = ""

#: Deliveries a dead letter may have before the broker drops it (see ``Queue.dead_letter_arguments``).
DEAD_LETTER_DELIVERY_LIMIT = 1_000_000

# --- HTTP --------------------------------------------------------------------------------------------------
#: Request id, accepted from callers when well-formed, returned on every response, forwarded to inventory.
HTTP_REQUEST_ID = "X-Request-ID"
#: Set by the gateway on order-status reads it forwards to billing, after verifying the caller and the order
#: id (a caller's own copies are never forwarded): whose orders to show, and whether the caller may read all.
HTTP_PRINCIPAL_SUB = "X-Principal-Sub"
HTTP_READ_ALL = "X-Principal-Read-All"

#: W3C trace context (https://www.w3.org/TR/trace-context/), on HTTP requests and AMQP messages alike: the
#: span that sent it, so the receiver's spans join the same trace (common.tracing). Lower case: AMQP header
#: names are case-sensitive, and OpenTelemetry's propagator writes them so.
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

# --- AMQP message headers ----------------------------------------------------------------------------------
#: The request id of the HTTP request that published the message (one id from gateway log to billing row).
REQUEST_ID = "x-request-id"
#: Who placed the order (from the verified token): ``x-principal-sub``, ``-client-id``, ``-username``.
PRINCIPAL_PREFIX = "x-principal-"
PRINCIPAL_SUB = f"{PRINCIPAL_PREFIX}sub"
PRINCIPAL_CLIENT_ID = f"{PRINCIPAL_PREFIX}client-id"
PRINCIPAL_USERNAME = f"{PRINCIPAL_PREFIX}username"

#: Added by a consumer when it dead-letters a message (the original headers are kept alongside).
DEAD_LETTER_REASON = "x-dead-letter-reason"
DEAD_LETTER_KIND = "x-dead-letter-kind"
DEAD_LETTERED_AT = "x-dead-lettered-at"
ORIGINAL_MESSAGE_ID = "x-original-message-id"
ORIGINAL_QUEUE = "x-original-queue"
#: Added by billing's re-drive job (``billing.jobs``) each time it moves a dead letter the broker dead-lettered
#: past the delivery limit back to its queue: how often it was re-driven (bounded by BILLING_REDRIVE_MAX_ATTEMPTS).
REDRIVE_ATTEMPTS = "x-redrive-attempts"
#: Billing parks a message whose billing shard (``contract.shards``) is away in the dead-letter queue with this
#: ``x-dead-letter-kind`` and the shard's number in ``x-billing-shard``; the leader's re-drive job moves it back
#: once that shard answers again (never counted as an attempt: the message is not at fault).
SHARD_UNAVAILABLE_KIND = "shard_unavailable"
BILLING_SHARD = "x-billing-shard"

#: Set by RabbitMQ itself: on each redelivery from a quorum queue (``x-delivery-count``), and on every message
#: it dead-letters (``x-death``: a list, newest first, of {queue, reason, count, time, ...}).
BROKER_DELIVERY_COUNT = "x-delivery-count"
BROKER_DEATHS = "x-death"
#: The ``x-death`` reason of a message the broker dead-lettered past the queue's delivery limit.
DELIVERY_LIMIT_REASON = "delivery_limit"
