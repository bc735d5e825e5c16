"""RabbitMQ connection parameters and the queue topology, declared identically by every publisher and consumer."""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection

from common.config import RabbitSettings
from common.secrets import Login, connect_with_login
from contract import saga
from contract.messaging import QUEUES

#: AMQP reply code of ACCESS_REFUSED (a refused login, when the broker says so before closing).
ACCESS_REFUSED = 403


def is_login_refused(exc: BaseException) -> bool:
    """True when a failed connection attempt means "wrong user or password" rather than "broker away".

    pika names it ProbableAuthenticationError (the broker closed the socket during the handshake, which is
    how RabbitMQ refuses a login) or AuthenticationError; brokers that announce the refusal close the
    connection with ACCESS_REFUSED. The error may come wrapped (pika reports the last of its attempts).
    """
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, pika.exceptions.ProbableAuthenticationError | pika.exceptions.AuthenticationError):
            return True
        if isinstance(item, pika.exceptions.ConnectionClosedByBroker) and item.reply_code == ACCESS_REFUSED:
            return True
        pending.extend([*item.args, item.__cause__, item.__context__])
    return False


def open_connection(settings: RabbitSettings) -> BlockingConnection:
    """A blocking connection with the current login; a refused login is retried once with a re-read secret
    (the password was rotated since this process read it). Parameters are built at every connect."""
    return connect_with_login(
        settings.credentials,
        lambda login: pika.BlockingConnection(connection_parameters(settings, login)),
        is_login_refused,
    )


def connection_parameters(settings: RabbitSettings, login: Login) -> pika.ConnectionParameters:
    """pika parameters for the broker with ``login``; amqps:// verifies the server certificate against the
    system CAs."""
    parts = urlsplit(settings.url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (5671 if settings.uses_tls else 5672)
    vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
    ssl_options = None
    if settings.uses_tls:
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_options = pika.SSLOptions(context, server_hostname=host)
    return pika.ConnectionParameters(
        host=host,
        port=port,
        virtual_host=vhost,
        credentials=pika.PlainCredentials(login.user, login.password),
        ssl_options=ssl_options,
        heartbeat=settings.heartbeat,
        socket_timeout=settings.connect_timeout,
        stack_timeout=settings.connect_timeout * 2,
        blocked_connection_timeout=settings.connect_timeout * 6,
        connection_attempts=1,
        client_properties={"connection_name": "microservices"},
    )


def declare_topology(channel: pika.adapters.blocking_connection.BlockingChannel, settings: RabbitSettings) -> None:
    """Declare every queue of the contract (``contract.messaging.QUEUES``) and its dead-letter queue.

    Each is declared durable with exactly the contract's arguments (``Queue.arguments()``,
    ``Queue.dead_letter_arguments()``), the same in every publisher and consumer: RabbitMQ refuses a
    declaration whose arguments differ from the existing queue's (PRECONDITION_FAILED). The dead-letter queue
    comes first, so the broker always has somewhere to move a message past the delivery limit.
    """
    for queue in (settings.queue(contract_queue) for contract_queue in QUEUES):
        channel.queue_declare(queue=queue.dead_letter_queue, durable=True, arguments=queue.dead_letter_arguments())
        channel.queue_declare(queue=queue.name, durable=True, arguments=queue.arguments())


def declare_saga(
    channel: pika.adapters.blocking_connection.BlockingChannel,
    exchange: str = saga.EXCHANGE,
    queues: tuple[saga.SagaQueue, ...] = saga.SAGA_QUEUES,
) -> None:
    """Declare the saga's durable topic exchange and each consumer's queue with its dead-letter queue and its
    bindings (``contract.saga``). Publishers declare them too, so an event published before its consumer ever
    started waits in that consumer's queue instead of being dropped as unroutable."""
    channel.exchange_declare(exchange=exchange, exchange_type=saga.EXCHANGE_TYPE, durable=True)
    for queue in queues:
        channel.queue_declare(queue=queue.dead_letter_queue, durable=True, arguments=queue.dead_letter_arguments())
        channel.queue_declare(queue=queue.name, durable=True, arguments=queue.arguments())
        for binding in queue.bindings:
            channel.queue_bind(queue=queue.name, exchange=exchange, routing_key=binding)


def queue_exists(connection: pika.BlockingConnection, name: str) -> bool:
    """True when queue ``name`` exists, checked without creating it.

    A passive declaration of a missing queue closes its channel (404 NOT_FOUND), so it runs on a throwaway
    channel and the caller's channels stay open.
    """
    channel = connection.channel()
    try:
        channel.queue_declare(queue=name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return False
        raise
    if channel.is_open:
        channel.close()
    return True
