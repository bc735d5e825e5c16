"""Publishing orders to the billing queue with pipelined publisher confirms.

A 200 from the gateway means the broker has taken responsibility for the order (persistent, mandatory message
routed to its durable queue, confirmed). Anything less is a 503, never a false 200. The connection and its
confirms are handled by one I/O thread per worker process (``gateway.confirms``); this module is the request
side: build the message, hand it over, turn the verdict into a message id or :class:`BrokerUnavailable`.
"""

from __future__ import annotations

import logging
import time

import pika

from common import tracing
from common.amqp import is_login_refused
from common.config import RabbitSettings
from common.web import new_request_id
from contract import messaging
from contract.services import GATEWAY
from gateway import metrics
from gateway.confirms import ConfirmLink, LinkClosed, Outgoing, Refused

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached or did not confirm the message."""


class BillingPublisher:
    """Publishes orders from any number of request threads over one connection per process.

    A message whose connection broke before its confirm is retried once on a fresh connection with the same
    message id, so a retry that duplicates a message is absorbed by billing's idempotency. A message neither
    confirmed nor failed within ``timeout`` seconds (default: max(5 s, 3 x the connect timeout), room for a
    connect with a credential refresh) is reported as not accepted.
    """

    def __init__(self, settings: RabbitSettings, timeout: float | None = None):
        self._settings = settings
        self._timeout = timeout if timeout is not None else max(5.0, settings.connect_timeout * 3)
        self._link = ConfirmLink(settings)

    def publish(
        self,
        body: bytes,
        request_id: str,
        principal: dict[str, str] | None = None,
        *,
        message_id: str | None = None,
        queue: messaging.Queue = messaging.BILLING_QUEUE,
    ) -> str:
        """Publish ``body`` persistently to ``queue``; return its message id once the broker confirmed it.

        ``principal``: the caller's ``x-principal-*`` headers (``Principal.message_headers``). ``message_id``:
        the id to publish under (None: a new one, the same 128-bit random scheme as request ids).
        """
        message_id = message_id or new_request_id()
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
        routing_key = self._settings.queue(queue).routing_key
        attributes = {"messaging.system": "rabbitmq", "messaging.destination.name": routing_key,
                      "messaging.message.id": message_id, "request.id": request_id}
        with tracing.span(f"{routing_key} publish", tracing.PRODUCER, attributes):
            tracing.inject(headers)  # billing's consumer span becomes a child of (and links to) this one
            return self._send(Outgoing(routing_key, body, properties), message_id)

    def _send(self, item: Outgoing, message_id: str) -> str:
        for attempt in (1, 2, 3):
            error = self._link.send(item, self._timeout)
            if error is None:
                metrics.MESSAGES_PUBLISHED.labels("confirmed").inc()
                return message_id
            if isinstance(error, Refused):
                # The broker answered but refused the message: retrying on the same topology will not help.
                metrics.MESSAGES_PUBLISHED.labels("rejected").inc()
                raise BrokerUnavailable(f"broker did not accept the message: {error}")
            # A third attempt only after a refused login: the password is being rotated, and the credentials
            # re-read the secret at most once a second (a re-read just before the new version existed found
            # nothing), so the next connection may log in with the new password.
            last = attempt == 3 or (attempt == 2 and not is_login_refused(error))
            if last or isinstance(error, TimeoutError | LinkClosed):
                metrics.MESSAGES_PUBLISHED.labels("failed").inc()
                raise BrokerUnavailable(f"broker unreachable: {type(error).__name__}") from error
            log.warning("publish failed, retrying on a new connection", extra={"reason": type(error).__name__})
            item.reset()
        raise AssertionError("unreachable")

    def ping(self) -> None:
        """Raise unless the I/O thread has (or can open) a working connection: the readiness check.

        A connection found dead is replaced once before the broker is declared unreachable.
        """
        for attempt in (1, 2):
            error = self._link.send(Outgoing("", None, None), self._timeout)
            if error is None:
                return
            if attempt == 2 or isinstance(error, TimeoutError):
                raise BrokerUnavailable(f"broker unreachable: {type(error).__name__}") from error

    def close(self, timeout: float | None = None) -> None:
        """Graceful shutdown: refuse new messages, wait for the outstanding confirms, close the connection."""
        self._link.stop(self._timeout if timeout is None else timeout)

    def _close(self) -> None:
        """Drop the current connection; the next publish or ping opens a new one (with the current login)."""
        self._link.reset(self._timeout)
