"""The invoicer's entry points: one ``order.confirmed`` message (:func:`handle`), an Amazon MQ batch (:func:`handler`).

:func:`handle` is the whole job, shared by the Lambda and the local runner (``local_system/invoicer_runner.py``):
read the event (``events.parse_confirmed``), render the PDF, store it (``store.store_invoice``, idempotent),
then publish ``invoice.ready`` (the claim check: key, sha256, size; its event id derived from the order id, so
a replay publishes the same event) to the saga's exchange with confirms. It publishes only after the object is
stored, and the message it answers is acknowledged only after both: a failure anywhere leaves the message to be
redelivered, and the redelivery finds the invoice stored and announces the same event again.

:func:`handler` is the Lambda entry point for the event source mapping of Amazon MQ for RabbitMQ (batch size 1):
messages come base64-encoded in ``rmqMessagesByQueue``. A malformed message is moved to the queue's
dead-letter queue with the reason (``contract.messaging`` headers), as the services' saga consumers do, and the
invocation succeeds; an S3 or broker failure raises, so Lambda's source does not acknowledge and the broker
redelivers (past the queue's delivery limit, the broker dead-letters it).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contract import claim_check as CC
from contract import invoices as C
from contract import saga

from .broker import BrokerSettings, Publisher
from .events import Malformed, invoice_ready, parse_confirmed
from .render import render
from .store import bucket, log, store_invoice


def handle(body: bytes, publisher: Publisher, *, message_id: str | None = None, routing_key: str | None = None,
           headers: Mapping[str, Any] | None = None) -> saga.Event:
    """Store the invoice of one ``order.confirmed`` message and publish its ``invoice.ready``; that event.

    Malformed for a message that is not such an event (nothing stored, nothing published); S3 and broker
    errors propagate (the caller leaves the message unacknowledged).
    """
    if (headers or {}).get(CC.HEADER) is not None:
        # order.confirmed is a few hundred bytes, far under the claim-check threshold: not one of ours.
        raise Malformed("order.confirmed never travels by claim check; this message does", "not_for_invoicer")
    line = parse_confirmed(body, message_id=message_id, routing_key=routing_key)
    claim = store_invoice(bucket(), C.invoice_key(line.order_id), render(line))
    event = invoice_ready(line.order_id, claim, line.ordered_at, line.buyer_sub)
    publisher.publish(event)
    log("INFO", "invoice.ready published", order_id=line.order_id, event_id=event.event_id, key=claim["key"])
    return event


# -- Amazon MQ for RabbitMQ ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MqMessage:
    """One message of an Amazon MQ (RabbitMQ) Lambda event: its queue, body, headers and message id."""

    queue: str
    body: bytes
    headers: Mapping[str, Any]
    redelivered: bool
    message_id: str | None = None
    content_type: str | None = None


def header_value(value: Any) -> Any:
    """A header as Lambda hands it over: RabbitMQ strings arrive as ``{"bytes": [...]}``; decoded to str."""
    if isinstance(value, Mapping) and isinstance(value.get("bytes"), list):
        try:
            return bytes(value["bytes"]).decode("utf-8")
        except (ValueError, TypeError):
            raise Malformed("a header's bytes are not UTF-8") from None
    return value


def mq_messages(event: Any) -> list[MqMessage]:
    """The messages of an Amazon MQ for RabbitMQ event (``rmqMessagesByQueue``: ``"<queue>::<vhost>"`` -> list
    of ``{"basicProperties": {"headers", "messageId", ...}, "redelivered", "data": <base64>}``); Malformed
    otherwise (a malformed event has no message to dead-letter: the invocation fails)."""
    if not isinstance(event, Mapping) or not isinstance(event.get("rmqMessagesByQueue"), Mapping):
        raise Malformed("not an Amazon MQ for RabbitMQ event: no rmqMessagesByQueue object")
    messages = []
    for queue, items in event["rmqMessagesByQueue"].items():
        if not isinstance(items, list):
            raise Malformed(f"rmqMessagesByQueue[{queue!r}] is not a list")
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("data"), str):
                raise Malformed(f"a message of {queue!r} has no base64 data")
            try:
                body = base64.b64decode(item["data"], validate=True)
            except (binascii.Error, ValueError):
                raise Malformed(f"a message of {queue!r} has data that is not base64") from None
            properties = item.get("basicProperties") or {}
            if not isinstance(properties, Mapping):
                raise Malformed(f"a message of {queue!r} has basicProperties that are not an object")
            headers = properties.get("headers") or {}
            if not isinstance(headers, Mapping):
                raise Malformed(f"a message of {queue!r} has headers that are not an object")
            message_id = properties.get("messageId")
            messages.append(MqMessage(
                queue.split("::")[0], body, {name: _header_or_none(value) for name, value in headers.items()},
                bool(item.get("redelivered")), message_id if isinstance(message_id, str) else None,
                properties.get("contentType") if isinstance(properties.get("contentType"), str) else None,
            ))
    return messages


def _header_or_none(value: Any) -> Any:
    """A decoded header; one whose bytes are not UTF-8 is kept as None (it is not ours to refuse the message)."""
    try:
        return header_value(value)
    except Malformed:
        return None


@functools.cache
def publisher() -> Publisher:
    """The publisher of this container (its connection outlives one invocation; reopened when it broke)."""
    return Publisher(BrokerSettings.from_env())


def process(message: MqMessage, publish: Publisher) -> dict[str, Any]:
    """The result of one message: ``{"status": "ready", "invoice_ready": <event>}`` or, after moving it to the
    dead-letter queue, ``{"status": "dead_lettered", "kind", "error"}``. S3 and broker errors propagate."""
    try:
        event = handle(message.body, publish, message_id=message.message_id, headers=message.headers)
    except Malformed as exc:
        log("ERROR", "malformed message dead-lettered", queue=message.queue, redelivered=message.redelivered,
            kind=exc.kind, error=str(exc))
        publish.dead_letter(message.queue, message.body, message.headers, kind=exc.kind, reason=str(exc),
                            message_id=message.message_id, content_type=message.content_type)
        return {"status": "dead_lettered", "kind": exc.kind, "error": str(exc)}
    return {"status": "ready", "invoice_ready": json_of(event)}


def json_of(event: saga.Event) -> dict[str, Any]:
    """The event as the JSON object it travels as."""
    return {name: getattr(event, name) for name in saga.ENVELOPE_FIELDS}


def handler(event: Mapping[str, Any], context: Any = None, *, publish: Publisher | None = None) -> dict[str, Any]:
    """Lambda entry point (Amazon MQ for RabbitMQ): ``{"results": [...]}``, one per message, in order.

    ``publish`` is the container's :func:`publisher` unless given (tests give one on an exchange of their own).
    """
    messages = mq_messages(event)
    publish = publish or publisher()
    return {"results": [process(message, publish) for message in messages]}
