"""The invoicer's side of RabbitMQ: its login, its connection, and a publisher with confirms.

What ``services/common/amqp.py`` does for the services, for a process that has only ``contract`` and pika next
to it (the Lambda bundle holds ``functions/invoices`` and ``contract``, not ``services/``): the same broker
settings by the same names (``contract.invoices.BROKER_*_SETTING``), the same saga topology
(``contract.saga``: the exchange, each consumer's queue with its dead-letter queue and bindings, declared with
the contract's arguments, so an ``invoice.ready`` published before billing ever started waits in billing's
queue), and the same publishing rules: persistent, ``mandatory``, confirmed by the broker, ``message_id`` =
event id, ``type`` = event type, routing key = event type.

The login comes from the secret ``RABBITMQ_SECRET_ID`` (Amazon MQ's: JSON ``username``/``password``; boto3
reads ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` itself locally) or, without one, from ``RABBITMQ_USER`` /
``RABBITMQ_PASSWORD``. A refused login re-reads the secret once: the password may have been rotated.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from contract import invoices as C
from contract import messaging, saga

#: Connection-level failures after which a publish is tried once more on a new connection.
RECONNECT_ON = (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelWrongStateError, OSError)
_MAX_REASON = 500


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how to log in."""

    url: str
    secret_id: str = ""
    user: str = ""
    password: str = ""
    heartbeat: int = 30
    connect_timeout: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BrokerSettings:
        """The settings of this process (``contract.invoices``' names); RuntimeError without a URL."""
        env = os.environ if environ is None else environ
        url = env.get(C.BROKER_URL_SETTING, "")
        if not url:
            raise RuntimeError(f"{C.BROKER_URL_SETTING} is not set")
        return cls(url, env.get(C.BROKER_SECRET_SETTING, ""), env.get(C.BROKER_USER_SETTING, ""),
                   env.get(C.BROKER_PASSWORD_SETTING, ""))

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "amqps"


@functools.cache
def _secret_login(secret_id: str, stage: str = "AWSCURRENT") -> tuple[str, str]:
    """username and password of a version of a Secrets Manager secret (cached; cleared when the broker refuses
    them)."""
    secrets = boto3.client("secretsmanager")
    value = json.loads(secrets.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])
    return value["username"], value["password"]


def login(settings: BrokerSettings, stage: str = "AWSCURRENT") -> tuple[str, str]:
    """The broker login: the secret's (``stage``), else the user/password settings; RuntimeError without
    either."""
    if settings.secret_id:
        return _secret_login(settings.secret_id, stage)
    if not settings.user:
        raise RuntimeError(f"neither {C.BROKER_SECRET_SETTING} nor {C.BROKER_USER_SETTING} is set")
    return settings.user, settings.password


def connection_parameters(settings: BrokerSettings, user: str, password: str) -> pika.ConnectionParameters:
    """pika parameters; amqps:// (Amazon MQ) verifies the broker's certificate against the system CAs."""
    parts = urlsplit(settings.url)
    host = parts.hostname or "127.0.0.1"
    ssl_options = None
    if settings.uses_tls:
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_options = pika.SSLOptions(context, server_hostname=host)
    return pika.ConnectionParameters(
        host=host, port=parts.port or (5671 if settings.uses_tls else 5672),
        virtual_host=unquote(parts.path[1:]) if parts.path not in ("", "/") else "/",
        credentials=pika.PlainCredentials(user, password), ssl_options=ssl_options,
        heartbeat=settings.heartbeat, socket_timeout=settings.connect_timeout,
        stack_timeout=settings.connect_timeout * 2, blocked_connection_timeout=settings.connect_timeout * 6,
        connection_attempts=1, client_properties={"connection_name": "invoicer"},
    )


def connect(settings: BrokerSettings) -> BlockingConnection:
    """A connection with the current login. A refused login is tried again with the secret read afresh, then
    with its ``AWSPENDING`` version: during a rotation the broker has the new password (setSecret) before
    Secrets Manager makes it current (finishSecret)."""
    refused = (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)
    try:
        return pika.BlockingConnection(connection_parameters(settings, *login(settings)))
    except refused:
        if not settings.secret_id:
            raise
    _secret_login.cache_clear()
    try:
        return pika.BlockingConnection(connection_parameters(settings, *login(settings)))
    except refused as refusal:
        try:
            pending = login(settings, "AWSPENDING")
        except Exception:  # noqa: BLE001 - no rotation under way: the current login's refusal stands
            raise refusal from None
        finally:
            _secret_login.cache_clear()  # the next connection reads AWSCURRENT again
        return pika.BlockingConnection(connection_parameters(settings, *pending))


def declare_saga(channel: BlockingChannel, exchange: str = saga.EXCHANGE,
                 queues: tuple[saga.SagaQueue, ...] = saga.SAGA_QUEUES) -> None:
    """The saga's exchange and consumer queues exactly as ``common.amqp.declare_saga`` declares them."""
    channel.exchange_declare(exchange=exchange, exchange_type=saga.EXCHANGE_TYPE, durable=True)
    for queue in queues:
        channel.queue_declare(queue=queue.dead_letter_queue, durable=True, arguments=queue.dead_letter_arguments())
        channel.queue_declare(queue=queue.name, durable=True, arguments=queue.arguments())
        for binding in queue.bindings:
            channel.queue_bind(queue=queue.name, exchange=exchange, routing_key=binding)


class Publisher:
    """Publishes saga events (and dead letters) with confirms on a channel of its own.

    Either it opens its own connection (``settings``; the Lambda, where it outlives one invocation) or it uses
    the caller's (``connection``; the local runner's consumer connection, so one connection's heartbeats
    cover both). A publish that fails on a broken connection of its own is tried once more on a new one.
    """

    def __init__(self, settings: BrokerSettings | None = None, *, connection: BlockingConnection | None = None,
                 exchange: str = saga.EXCHANGE, queues: tuple[saga.SagaQueue, ...] = saga.SAGA_QUEUES,
                 connector: Callable[[BrokerSettings], BlockingConnection] = connect):
        if (settings is None) == (connection is None):
            raise ValueError("give either settings (own connection) or a connection")
        self.settings, self.exchange, self.queues = settings, exchange, queues
        self._connector = connector
        self._connection = connection
        self._channel: BlockingChannel | None = None

    def _ready_channel(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        if self._connection is None or self._connection.is_closed:
            if self.settings is None:
                raise pika.exceptions.ConnectionWrongStateError("the consumer's connection is closed")
            self._connection = self._connector(self.settings)
        channel = self._connection.channel()
        channel.confirm_delivery()
        declare_saga(channel, self.exchange, self.queues)
        self._channel = channel
        return channel

    def _send(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish and wait for the broker's confirm; UnroutableError / NackError when it did not take it."""
        try:
            self._ready_channel().basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except RECONNECT_ON:
            if self.settings is None:
                raise
            self.close()
            self._ready_channel().basic_publish(exchange, routing_key, body, properties, mandatory=True)

    def publish(self, event: saga.Event) -> None:
        """``event`` to the exchange, persistent, confirmed."""
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
            message_id=event.event_id, type=event.type, timestamp=int(datetime.now(UTC).timestamp()),
        )
        self._send(self.exchange, event.routing_key, event.body(), properties)

    def dead_letter(self, queue: str, body: bytes, headers: Mapping[str, Any], *, kind: str, reason: str,
                    message_id: str | None = None, content_type: str | None = None) -> None:
        """Move a message of ``queue`` that cannot be processed to ``<queue>.dlq`` with why (the header names of
        ``contract.messaging``, as every consumer's dead letters), confirmed."""
        marked = {
            **{name: value for name, value in headers.items() if isinstance(value, str | int | bool | float)},
            messaging.DEAD_LETTER_REASON: reason[:_MAX_REASON],
            messaging.DEAD_LETTER_KIND: kind,
            messaging.ORIGINAL_MESSAGE_ID: message_id or "",
            messaging.ORIGINAL_QUEUE: queue,
            messaging.DEAD_LETTERED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        properties = pika.BasicProperties(content_type=content_type, headers=marked, message_id=message_id,
                                          delivery_mode=pika.DeliveryMode.Persistent)
        self._send(messaging.DEFAULT_EXCHANGE, f"{queue}.dlq", body, properties)

    def close(self) -> None:
        """Close the channel, and the connection when it is this publisher's own."""
        channel, self._channel = self._channel, None
        connection = self._connection
        if self.settings is not None:
            self._connection = None
        try:
            if self.settings is not None and connection is not None and connection.is_open:
                connection.close()
            elif channel is not None and channel.is_open:
                channel.close()
        except (pika.exceptions.AMQPError, OSError):
            pass
