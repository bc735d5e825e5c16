"""Draining the classic queue that the quorum queue replaced (``Queue.legacy_classic_queue``).

A queue's type cannot change in place, so the orders queue moved to a new name. During a rolling deploy the
old classic queue still holds orders, and old gateway tasks may still publish to it. Billing consumes it on
the same channel as the new queue, with the same processing, idempotency and acknowledgements, for as long
as it exists: it looks for it at every (re)connect and again every ``recheck_seconds`` while it is absent
(an old gateway task declares it again when it reconnects). Once an operator has deleted it (see
docs/operations.md, "Queue migration"), the check costs one short-lived channel per interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from common.amqp import queue_exists

log = logging.getLogger("billing.consumer")

#: How often a consumer without the legacy queue looks for it again.
RECHECK_SECONDS = 30.0


class LegacyQueueDrain:
    """Consumes the legacy classic queue ``name`` (None: there is none) while it exists."""

    def __init__(self, name: str | None, recheck_seconds: float | None = None):
        self.name = name
        self._recheck_seconds = RECHECK_SECONDS if recheck_seconds is None else recheck_seconds
        self._consumer_tag: str | None = None
        self._next_check = 0.0

    @property
    def attached(self) -> bool:
        """True while this consumer consumes the legacy queue."""
        return self._consumer_tag is not None

    def attach(self, connection: BlockingConnection, channel: BlockingChannel, on_message: Callable) -> None:
        """Consume the legacy queue on ``channel`` if it exists; at most one check per interval.

        A missing queue is not an error: nothing happens to ``channel`` (the check runs on its own channel).
        """
        if self.name is None or self.attached or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self._recheck_seconds
        if not queue_exists(connection, self.name):
            return
        self._consumer_tag = channel.basic_consume(self.name, on_message_callback=on_message)
        log.warning(
            "legacy classic queue still exists; draining it (delete it once it stays empty and no old gateway "
            "task runs: docs/operations.md, Queue migration)",
            extra={"queue": self.name},
        )

    def cancelled_by_broker(self, consumer_tag: str) -> bool:
        """True (and forgets the subscription) when the broker cancelled the legacy consumer (queue deleted)."""
        if consumer_tag is None or consumer_tag != self._consumer_tag:
            return False
        log.info("legacy classic queue deleted; no longer draining it", extra={"queue": self.name})
        self._consumer_tag = None
        return True

    def cancel(self, channel: BlockingChannel) -> None:
        """Stop consuming the legacy queue (shutdown); pika hands back what it had not dispatched yet."""
        tag, self._consumer_tag = self._consumer_tag, None
        if tag is not None:
            channel.basic_cancel(tag)

    def reset(self) -> None:
        """The connection is gone: the subscription with it. Look again at the next connect."""
        self._consumer_tag = None
        self._next_check = 0.0
