"""One message as the billing consumer received it, and the log context of its request id."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika

from billing.store import Owner
from common.log import request_id_var
from common.web import accept_request_id
from contract import messaging


@dataclass(frozen=True)
class Delivery:
    """One message as received, plus the ids taken from its properties."""

    delivery_tag: int
    properties: pika.BasicProperties
    body: bytes
    message_id: str | None
    request_id: str
    queue: str = ""
    """The queue it came from (the routing key: orders are published through the default exchange)."""
    owner: Owner | None = None
    """Who placed it (the gateway's ``x-principal-*`` headers); None when the publisher set none."""

    @classmethod
    def from_amqp(cls, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes) -> Delivery:
        """Capture a delivery; the request id comes from the ``x-request-id`` header (fresh if absent/invalid)."""
        raw = (properties.headers or {}).get(messaging.REQUEST_ID)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        return cls(
            delivery_tag=method.delivery_tag,
            properties=properties,
            body=body,
            message_id=properties.message_id or None,
            request_id=accept_request_id(raw if isinstance(raw, str) else None),
            queue=method.routing_key or "",
            owner=owner_of(properties.headers or {}),
        )


def owner_of(headers: dict) -> Owner | None:
    """The principal in the gateway's ``x-principal-*`` headers: its sub, and its user name or client id."""

    def text(name: str) -> str:
        value = headers.get(name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value if isinstance(value, str) else ""

    sub, username, client_id = (
        text(messaging.PRINCIPAL_SUB), text(messaging.PRINCIPAL_USERNAME), text(messaging.PRINCIPAL_CLIENT_ID)
    )
    if not (sub or username or client_id):
        return None
    return Owner(sub or None, username or (f"client:{client_id}" if client_id else None))


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Make every log line inside the block carry ``request_id``."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)
