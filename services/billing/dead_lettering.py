"""Moving a message billing can never store to its queue's dead-letter queue, with the reason in its headers."""

from __future__ import annotations

import logging
import struct
from datetime import UTC, datetime

import pika
from pika.adapters.blocking_connection import BlockingChannel

from billing import metrics
from billing.delivery import Delivery, request_context
from contract import messaging
from contract.messaging import Queue

log = logging.getLogger("billing.consumer")

#: Headers billing adds when dead-lettering (the original headers are kept alongside); a replayed message
#: goes back without them.
DEAD_LETTER_HEADERS = (
    messaging.DEAD_LETTER_REASON,
    messaging.DEAD_LETTER_KIND,
    messaging.ORIGINAL_MESSAGE_ID,
    messaging.ORIGINAL_QUEUE,
    messaging.DEAD_LETTERED_AT,
)

# A reason quotes the offending value; keep the header small whatever the message held.
MAX_REASON_LENGTH = 500


class DeadLetterPublisher:
    """Publishes dead letters of ``queue`` on a channel in confirm mode: one counts as moved only once the
    broker confirmed it."""

    def __init__(self, channel: BlockingChannel, queue: Queue):
        self._channel = channel
        self._queue = queue

    def publish(self, delivery: Delivery, kind: str, reason: str, extra_headers: dict | None = None) -> None:
        """Publish the original body and headers, plus the reason (and ``extra_headers``), to the dead-letter
        queue; wait for the confirm."""
        try:
            self._publish(delivery, kind, reason, keep_headers=True, extra=extra_headers)
        except (TypeError, ValueError, struct.error) as exc:
            # pika could not re-encode the original headers (an exotic publisher). Dropping them beats a poison
            # message that can never leave the queue.
            with request_context(delivery.request_id):
                log.warning("original headers not encodable; dead-lettering without them", extra={"error": str(exc)})
            self._publish(delivery, kind, reason, keep_headers=False, extra=extra_headers)
        metrics.MESSAGES_DEAD_LETTERED.labels(kind).inc()
        with request_context(delivery.request_id):
            log.warning(
                "order dead-lettered",
                extra={"message_id": delivery.message_id, "kind": kind, "reason": reason[:MAX_REASON_LENGTH]},
            )

    def _publish(self, delivery: Delivery, kind: str, reason: str, keep_headers: bool, extra: dict | None) -> None:
        original = delivery.properties
        headers = {
            **((original.headers or {}) if keep_headers else {}),
            messaging.DEAD_LETTER_REASON: reason[:MAX_REASON_LENGTH],
            messaging.DEAD_LETTER_KIND: kind,
            messaging.ORIGINAL_MESSAGE_ID: delivery.message_id or "",
            # Billing also drains the legacy classic queue: name the queue the message really came from.
            messaging.ORIGINAL_QUEUE: delivery.queue or self._queue.name,
            messaging.REQUEST_ID: delivery.request_id,
            messaging.DEAD_LETTERED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
            **(extra or {}),
        }
        properties = pika.BasicProperties(
            content_type=original.content_type,
            content_encoding=original.content_encoding,
            headers=headers,
            delivery_mode=pika.DeliveryMode.Persistent,
            # Same message id: replaying the message into its queue keeps it idempotent.
            message_id=original.message_id,
            correlation_id=original.correlation_id,
            timestamp=original.timestamp,
            type=original.type,
            app_id=original.app_id,
        )
        # mandatory: if the dead-letter queue is missing, the broker returns the message and pika raises
        # UnroutableError; the original then stays unacknowledged and is retried after a reconnect.
        self._channel.basic_publish(
            exchange=messaging.DEFAULT_EXCHANGE,
            routing_key=self._queue.dead_letter_queue,
            body=delivery.body,
            properties=properties,
            mandatory=True,
        )
