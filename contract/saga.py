"""The purchase saga (choreography, no orchestrator): its exchange, events, queues and the event envelope.

Services publish events to the durable topic exchange ``EXCHANGE`` with the event type as routing key; each
consumer reads its own quorum queue, bound to the types it reacts to (``SAGA_QUEUES``). The path of a purchase:

1. billing stores the order ``pending`` and emits ``order.placed``;
2. inventory reserves the stock (never below zero) and emits ``stock.reserved`` or ``stock.rejected``;
3. billing marks the order ``confirmed`` (emitting ``order.confirmed``) or ``rejected``; when it cannot confirm
   after a reservation it emits ``order.cancelled`` and inventory releases the stock (the compensation);
4. the invoicer renders the invoice of a confirmed order, stores it in S3 and emits ``invoice.ready`` with the
   object's key and checksum only (a claim check).

Every event is written to its service's outbox in the transaction of the state change it reports, and relayed
with publisher confirms (``services/common/outbox.py``), so it may arrive more than once: every consumer is
idempotent by ``event_id`` (``services/common/inbox.py``). Standard library only, like the whole contract.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from contract.messaging import Queue

#: The topic exchange of the saga (durable; declared by every publisher and consumer of it).
EXCHANGE = "movies.events"
EXCHANGE_TYPE = "topic"

#: Largest quantity of one purchase (the issue: 1 to 1,000).
MAX_QUANTITY = 1_000
#: Largest amount an event may carry: ``numeric(12,2)``, as billing's orders.
MAX_AMOUNT = Decimal("9999999999.99")
#: Longest event id, order id and reason (text fields are bounded: they end up in headers and rows).
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 500

# --- event types (the routing keys) --------------------------------------------------------------------------
ORDER_PLACED = "order.placed"
STOCK_RESERVED = "stock.reserved"
STOCK_REJECTED = "stock.rejected"
ORDER_CONFIRMED = "order.confirmed"
ORDER_CANCELLED = "order.cancelled"
INVOICE_READY = "invoice.ready"

# Kinds of data field, checked by the parser: whole number >= 1, 1..MAX_QUANTITY, money as an exact decimal
# string ("12.50"), non-empty text, lowercase hex SHA-256, and the principal ({"sub": ..., "name": ...|null}).
ID, QUANTITY, MONEY, TEXT, SHA256, PRINCIPAL = "id", "quantity", "money", "text", "sha256", "principal"


@dataclass(frozen=True)
class EventType:
    """One event: its routing key, the service that publishes it, who consumes it, and its ``data`` fields."""

    name: str
    publisher: str
    consumers: tuple[str, ...]
    data: Mapping[str, str]
    """Required ``data`` fields and their kind (more fields are allowed: a newer publisher may add some)."""
    description: str


EVENTS: dict[str, EventType] = {
    event.name: event
    for event in (
        EventType(
            ORDER_PLACED, "billing", ("inventory",),
            {"movie_id": ID, "quantity": QUANTITY, "total_amount": MONEY, "principal": PRINCIPAL},
            "Billing stored a purchase as pending; inventory is to reserve the stock.",
        ),
        EventType(
            STOCK_RESERVED, "inventory", ("billing",),
            {"movie_id": ID, "quantity": QUANTITY, "unit_price": MONEY},
            "Inventory took the quantity off the movie's stock at unit_price; billing confirms (or cancels).",
        ),
        EventType(
            STOCK_REJECTED, "inventory", ("billing",),
            {"movie_id": ID, "quantity": QUANTITY, "reason": TEXT},
            "Inventory reserved nothing (not enough stock, not for sale, price mismatch); billing rejects the order.",
        ),
        EventType(
            ORDER_CONFIRMED, "billing", ("invoicer",),
            {"movie_id": ID, "quantity": QUANTITY, "unit_price": MONEY, "total_amount": MONEY,
             "principal": PRINCIPAL},
            "Billing confirmed the purchase; the invoicer renders its invoice.",
        ),
        EventType(
            ORDER_CANCELLED, "billing", ("inventory",),
            {"movie_id": ID, "quantity": QUANTITY, "reason": TEXT},
            "Compensation: billing could not confirm after a reservation; inventory releases the quantity.",
        ),
        EventType(
            INVOICE_READY, "invoicer", ("billing",),
            {"key": TEXT, "sha256": SHA256},
            "The invoice PDF is in the invoices bucket: its object key and checksum (a claim check).",
        ),
    )
}


# --- the queues -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SagaQueue(Queue):
    """A consumer's quorum queue of the saga: a :class:`~contract.messaging.Queue` (same arguments, dead-letter
    queue and delivery limit) bound to ``EXCHANGE`` with one binding per event type in ``bindings``.

    ``routing_key`` (the queue's name, through the default exchange) reaches this queue alone: a dead letter
    replayed that way goes back to this consumer only, not to every consumer of its event type.
    """

    bindings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        unknown = [name for name in self.bindings if name not in EVENTS]
        if unknown or not self.bindings:
            raise ValueError(f"saga queue {self.name} must bind known event types, got {self.bindings!r}")


def _saga_queue(name: str, consumer: str, description: str) -> SagaQueue:
    bindings = tuple(event.name for event in EVENTS.values() if consumer in event.consumers)
    publishers = tuple(sorted({EVENTS[binding].publisher for binding in bindings}))
    return SagaQueue(name, consumer=consumer, publishers=publishers, description=description, bindings=bindings)


INVENTORY_EVENTS = _saga_queue(
    "inventory.saga", "inventory", "order.placed (reserve stock) and order.cancelled (release it)."
)
BILLING_EVENTS = _saga_queue(
    "billing.saga", "billing", "stock.reserved / stock.rejected (confirm or reject) and invoice.ready."
)
INVOICER_EVENTS = _saga_queue("invoicer.saga", "invoicer", "order.confirmed: render and store the invoice.")
SAGA_QUEUES: tuple[SagaQueue, ...] = (INVENTORY_EVENTS, BILLING_EVENTS, INVOICER_EVENTS)


# --- the envelope ---------------------------------------------------------------------------------------------
class InvalidEvent(ValueError):
    """A message is not a well-formed saga event; ``str(error)`` says why, ``kind`` is a short label for
    dead-letter headers and metrics (``invalid_json``, ``not_an_object``, ``missing_field``, ``unknown_field``,
    ``unknown_type``, ``invalid_value``, ``mismatch``)."""

    def __init__(self, message: str, kind: str = "invalid_value"):
        super().__init__(message)
        self.kind = kind


ENVELOPE_FIELDS = ("event_id", "type", "order_id", "occurred_at", "data")
_MONEY = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Event:
    """A saga event. On the wire: the JSON object of :meth:`body`, published persistent to ``EXCHANGE`` with
    routing key ``type``, AMQP ``message_id`` = ``event_id`` and AMQP ``type`` = ``type``."""

    event_id: str
    type: str
    order_id: str
    occurred_at: str
    """ISO 8601 with the time zone, UTC when built here."""
    data: dict[str, Any]

    @property
    def routing_key(self) -> str:
        """The routing key on ``EXCHANGE``: the event type."""
        return self.type

    def body(self) -> bytes:
        """The message body: compact JSON of the envelope."""
        envelope = {name: getattr(self, name) for name in ENVELOPE_FIELDS}
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def new_event(
    event_type: str,
    order_id: str,
    data: Mapping[str, Any],
    *,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Build a valid event (a fresh id and the current time unless given); money may be given as a Decimal or
    int and is written as a string with two decimals. Raises :class:`InvalidEvent` like :func:`parse_event`."""
    spec = EVENTS[event_type].data if event_type in EVENTS else {}
    values = {name: _money_text(value) if spec.get(name) == MONEY else value for name, value in data.items()}
    when = (occurred_at or datetime.now(UTC)).isoformat(timespec="milliseconds")
    return _validated({
        "event_id": event_id or uuid.uuid4().hex, "type": event_type, "order_id": order_id,
        "occurred_at": when, "data": values,
    })


def _money_text(value: Any) -> Any:
    """A Decimal or int amount as the text an event carries ("12.50"); anything else unchanged (then checked).
    More than two decimals are not rounded away: the text keeps them and the check refuses it."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return value
    amount = Decimal(value)
    return f"{amount:.2f}" if amount == amount.quantize(Decimal("0.01")) else str(amount)


def parse_event(body: bytes, *, message_id: str | None = None, routing_key: str | None = None) -> Event:
    """The event in a message body; :class:`InvalidEvent` when it is not one.

    ``message_id`` and ``routing_key`` (the AMQP ones, when known) must agree with ``event_id`` and ``type``.
    """
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent(f"body is not JSON: {exc}", "invalid_json") from exc
    event = _validated(envelope)
    if message_id is not None and message_id != event.event_id:
        raise InvalidEvent(f"message_id {message_id!r} differs from event_id {event.event_id!r}", "mismatch")
    if routing_key is not None and routing_key != event.type:
        raise InvalidEvent(f"routing key {routing_key!r} differs from type {event.type!r}", "mismatch")
    return event


def _validated(envelope: Any) -> Event:
    if not isinstance(envelope, dict):
        raise InvalidEvent("an event must be a JSON object", "not_an_object")
    missing = [name for name in ENVELOPE_FIELDS if name not in envelope]
    if missing:
        raise InvalidEvent(f"missing field(s): {', '.join(missing)}", "missing_field")
    unknown = sorted(set(envelope) - set(ENVELOPE_FIELDS))
    if unknown:
        raise InvalidEvent(f"unknown field(s): {', '.join(unknown)}", "unknown_field")
    event_type = envelope["type"]
    if event_type not in EVENTS:
        raise InvalidEvent(f"unknown event type {event_type!r}", "unknown_type")
    event_id = _identifier(envelope["event_id"], "event_id")
    order_id = _identifier(envelope["order_id"], "order_id")
    occurred_at = envelope["occurred_at"]
    try:
        parsed = datetime.fromisoformat(occurred_at) if isinstance(occurred_at, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidEvent(f"occurred_at must be an ISO 8601 time with a time zone, got {occurred_at!r}")
    data = envelope["data"]
    if not isinstance(data, dict):
        raise InvalidEvent("data must be a JSON object", "not_an_object")
    for name, kind in EVENTS[event_type].data.items():
        if name not in data:
            raise InvalidEvent(f"{event_type} data is missing {name}", "missing_field")
        _check(kind, data[name], f"{event_type} data.{name}")
    return Event(event_id, event_type, order_id, occurred_at, dict(data))


def _identifier(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise InvalidEvent(f"{name} must be a printable string of 1 to {MAX_ID_LENGTH} characters")
    return value


def _check(kind: str, value: Any, where: str) -> None:
    """Raise InvalidEvent unless ``value`` is a valid ``kind``."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    if kind == ID and not (whole and value >= 1):
        raise InvalidEvent(f"{where} must be a whole number >= 1, got {value!r}")
    if kind == QUANTITY and not (whole and 1 <= value <= MAX_QUANTITY):
        raise InvalidEvent(f"{where} must be a whole number from 1 to {MAX_QUANTITY}, got {value!r}")
    if kind == MONEY:
        try:
            ok = isinstance(value, str) and bool(_MONEY.match(value)) and Decimal(value) <= MAX_AMOUNT
        except InvalidOperation:
            ok = False
        if not ok:
            raise InvalidEvent(f"{where} must be an amount as text like \"12.50\" (0 to {MAX_AMOUNT}), got {value!r}")
    if kind == TEXT and not (isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT_LENGTH):
        raise InvalidEvent(f"{where} must be non-empty text of at most {MAX_TEXT_LENGTH} characters")
    if kind == SHA256 and not (isinstance(value, str) and _SHA256.match(value)):
        raise InvalidEvent(f"{where} must be a SHA-256 as 64 lowercase hex digits")
    if kind == PRINCIPAL and not (
        isinstance(value, dict) and isinstance(value.get("sub"), str) and value["sub"]
        and isinstance(value.get("name"), str | type(None))
    ):
        raise InvalidEvent(f"{where} must be an object with a non-empty \"sub\" and a \"name\" (text or null)")
