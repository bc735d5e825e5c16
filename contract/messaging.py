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

    @staticmethod
    def dead_letter_arguments() -> dict[str, object]:
        """The declaration arguments of the dead-letter queue (a quorum queue too, kept until replayed)."""
        return {"x-queue-type": "quorum"}


BILLING_QUEUE = Queue(
    "billing.orders",
    consumer="billing",
    publishers=("gateway",),
    description="Orders accepted by POST /api/billing, waiting to be stored in billing_db.",
    legacy_classic_queue="billing_queue",
)

QUEUES: tuple[Queue, ...] = (BILLING_QUEUE,)

#: The default exchange: messages are routed to the queue named by the routing key.
DEFAULT_EXCHANGE = ""

# --- HTTP --------------------------------------------------------------------------------------------------
#: Request id, accepted from callers when well-formed, returned on every response, forwarded to inventory.
HTTP_REQUEST_ID = "X-Request-ID"

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
