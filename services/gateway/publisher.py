"""Publishing orders to the billing queues (one per priority) with publisher confirms.

A 200 from the gateway means the broker has taken responsibility for the order (persistent message in a
durable queue, confirmed). Anything less is a 503, never a false 200.
"""

from __future__ import annotations

import logging
import threading
import time

import pika
import pika.exceptions

from common.amqp import declare_topology, open_connection
from common.config import RabbitSettings
from common.secrets import SecretUnavailable
from common.web import new_request_id
from contract import messaging
from contract.messaging import Queue
from contract.services import GATEWAY
from gateway import metrics

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached or did not confirm the message."""


class BillingPublisher:
    """One AMQP connection and confirm-mode channel per gateway thread (pika connections are not thread-safe).

    A publish that fails on a broken connection is retried once on a fresh one with the same message id, so
    a retry that duplicates a message is absorbed by billing's idempotency.
    """

    def __init__(self, settings: RabbitSettings):
        self._settings = settings
        self._local = threading.local()
        self._max_idle = max(1.0, settings.heartbeat or 60)

    def _channel(self) -> pika.adapters.blocking_connection.BlockingChannel:
        channel = getattr(self._local, "channel", None)
        # A blocking connection answers heartbeats only while it is used: one idle for longer than the
        # heartbeat interval has probably been closed by the broker, so it is replaced rather than tried.
        fresh = time.monotonic() - getattr(self._local, "last_used", 0.0) < self._max_idle
        if channel is not None and channel.is_open and channel.connection.is_open and fresh:
            return channel
        self._close()
        # Parameters (the login) are built at every connect: a rotated password is picked up here.
        connection = open_connection(self._settings)
        channel = connection.channel()
        channel.confirm_delivery()
        declare_topology(channel, self._settings)
        self._local.channel = channel
        return channel

    def _close(self) -> None:
        channel = getattr(self._local, "channel", None)
        self._local.channel = None
        if channel is not None:
            try:
                channel.connection.close()
            except Exception:  # noqa: BLE001, S110 - the connection is already broken; nothing to do
                pass

    def publish(
        self,
        body: bytes,
        request_id: str,
        principal: dict[str, str] | None = None,
        *,
        message_id: str | None = None,
        queue: Queue = messaging.BILLING_QUEUE,
    ) -> str:
        """Publish ``body`` persistently to ``queue``; return its message id once the broker confirmed it.

        ``principal``: the caller's ``x-principal-*`` headers (``Principal.message_headers``). ``message_id``:
        the id to publish under (the gateway's signed order id); None: a fresh random one. ``queue``: the
        contract's queue of the order's priority (``contract.messaging.PRIORITY_QUEUES``), as named on this
        broker. The topology declared on every new channel covers every queue of the contract.
        """
        routing_key = self._settings.queue(queue).routing_key
        message_id = message_id or new_request_id()  # the same 128-bit random id scheme
        headers: dict[str, str] = {messaging.REQUEST_ID: request_id}
        if principal:
            headers.update(principal)
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            timestamp=int(time.time()),
            app_id=GATEWAY.name,
            headers=headers,
        )
        for attempt in (1, 2):
            try:
                self._channel().basic_publish(
                    exchange=messaging.DEFAULT_EXCHANGE,
                    routing_key=routing_key,
                    body=body,
                    properties=properties,
                    mandatory=True,
                )
                self._local.last_used = time.monotonic()
                metrics.MESSAGES_PUBLISHED.labels("confirmed").inc()
                return message_id
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                # The broker answered but refused the message: retrying on the same topology will not help.
                metrics.MESSAGES_PUBLISHED.labels("rejected").inc()
                raise BrokerUnavailable(f"broker did not accept the message: {type(exc).__name__}") from exc
            except (pika.exceptions.AMQPError, OSError, SecretUnavailable) as exc:
                self._close()
                if attempt == 2:
                    metrics.MESSAGES_PUBLISHED.labels("failed").inc()
                    raise BrokerUnavailable(f"broker unreachable: {type(exc).__name__}") from exc
                log.warning("publish failed, retrying on a new connection", extra={"reason": type(exc).__name__})
        raise AssertionError("unreachable")

    def ping(self) -> None:
        """Raise unless this thread has (or can open) a working channel: the readiness check.

        A connection found dead is replaced once before the broker is declared unreachable, so an idle
        gateway does not report itself unready just because its old connection timed out.
        """
        for attempt in (1, 2):
            try:
                channel = self._channel()
                channel.connection.process_data_events(time_limit=0)
                self._local.last_used = time.monotonic()
                return
            except (pika.exceptions.AMQPError, OSError, SecretUnavailable) as exc:
                self._close()
                if attempt == 2:
                    raise BrokerUnavailable(f"broker unreachable: {type(exc).__name__}") from exc
