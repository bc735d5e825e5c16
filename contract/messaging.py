"""What travels between the services: queues, message headers and the HTTP request-id header.

Orders go from the gateway to billing through the default exchange (routing key = queue name). Every queue
has a dead-letter queue that keeps, with the reason in its headers, each message its consumer can never
process.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Queue:
    """A durable queue, who publishes to it and who consumes it."""

    name: str
    consumer: str
    publishers: tuple[str, ...]
    description: str

    @property
    def dead_letter_queue(self) -> str:
        """Where the consumer moves messages it can never process (with the reason in the headers)."""
        return f"{self.name}.dlq"

    @property
    def routing_key(self) -> str:
        """Published through the default exchange, whose routing key is the queue name."""
        return self.name


BILLING_QUEUE = Queue(
    "billing_queue",
    consumer="billing",
    publishers=("gateway",),
    description="Orders accepted by POST /api/billing, waiting to be stored in billing_db.",
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
