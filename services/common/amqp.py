"""RabbitMQ connection parameters and the queue topology, declared identically by every publisher and consumer."""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

import pika

from common.config import RabbitSettings


def connection_parameters(settings: RabbitSettings) -> pika.ConnectionParameters:
    """pika parameters for the broker; amqps:// verifies the server certificate against the system CAs."""
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
        credentials=pika.PlainCredentials(settings.user, settings.password),
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

    Each is declared durable with no extra arguments, exactly as existing publishers declare them (different
    arguments would make RabbitMQ refuse the declaration). Consumers move unprocessable messages to the
    dead-letter queue themselves, so they can attach the reason.
    """
    for queue in settings.queues.values():
        channel.queue_declare(queue=queue.dead_letter_queue, durable=True)
        channel.queue_declare(queue=queue.name, durable=True)
