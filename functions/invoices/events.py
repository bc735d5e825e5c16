"""The invoicer's messages: ``order.confirmed`` read through the saga's parser, ``invoice.ready`` built by it.

The envelope and the field kinds are ``contract.saga``'s (``parse_event`` / ``new_event``); what is checked
here is only what an invoice needs on top: the event is an ``order.confirmed``, its order id can be part of an
object key, the optional title is text, and the amounts agree (unit price x quantity = total). A body that
fails any of it raises :class:`Malformed` with the reason and a short ``kind``: no retry can fix it, so it must
end in the dead-letter queue, never as a wrong invoice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from contract import invoices as C
from contract import saga

from .render import InvoiceLine

#: Namespace of invoice.ready event ids: derived from the order, so a replay announces the same event.
_EVENT_NAMESPACE = uuid.UUID("6f1c2a5e-4b7d-4c1e-9a3f-2d8e5b6c7a10")


class Malformed(ValueError):
    """The message is not an ``order.confirmed`` event the invoicer can use; ``str()`` says why, ``kind`` is a
    short label for the dead-letter header (``contract.saga.InvalidEvent``'s kinds, or ``not_for_invoicer``)."""

    def __init__(self, message: str, kind: str = "invalid_value"):
        super().__init__(message)
        self.kind = kind


def buyer(principal: Mapping[str, Any]) -> str:
    """Who the invoice names: the principal's name, else its sub (the parser guarantees a non-empty sub)."""
    name = principal.get("name")
    return name.strip() if isinstance(name, str) and name.strip() else principal["sub"]


def parse_confirmed(
    body: bytes | str | Mapping[str, Any], *, message_id: str | None = None, routing_key: str | None = None
) -> InvoiceLine:
    """The invoice line of an ``order.confirmed`` event; Malformed with the reason otherwise.

    ``message_id`` / ``routing_key`` (the AMQP ones, when known) must agree with the envelope, as for every
    saga consumer.
    """
    if isinstance(body, Mapping):
        body = json.dumps(body)  # the parser reads bytes, like every consumer
    raw = body.encode() if isinstance(body, str) else body
    try:
        event = saga.parse_event(raw, message_id=message_id, routing_key=routing_key)
    except saga.InvalidEvent as exc:
        raise Malformed(str(exc), exc.kind) from None
    if event.type != saga.ORDER_CONFIRMED:
        raise Malformed(f"the event type is {event.type!r}, not {saga.ORDER_CONFIRMED!r}", "not_for_invoicer")
    if not C.valid_order_id(event.order_id):
        raise Malformed(f"order_id must be 1 to 64 letters, digits, '-' or '_', got {event.order_id!r}")
    data = event.data
    title = data.get("title")
    if title is not None and not isinstance(title, str):
        raise Malformed(f"data.title must be a string when given, got {title!r}")
    quantity, unit_price, total = data["quantity"], Decimal(data["unit_price"]), Decimal(data["total_amount"])
    if unit_price * quantity != total:
        # The invoice would contradict itself; billing checked this before confirming, so it is not ours.
        raise Malformed(f"data.total_amount {total} is not unit_price {unit_price} x quantity {quantity}", "mismatch")
    return InvoiceLine(
        order_id=event.order_id,
        ordered_at=datetime.fromisoformat(event.occurred_at).astimezone(UTC),
        principal=buyer(data["principal"]),
        buyer_sub=data["principal"]["sub"],
        movie_id=data["movie_id"],
        title=title,
        quantity=quantity,
        unit_price=unit_price,
        total_amount=total,
    )


def claim_check(key: str, document: bytes) -> dict[str, Any]:
    """The claim check of a stored document: ``{"key", "sha256", "size"}``, never the bytes."""
    return {"key": key, "sha256": hashlib.sha256(document).hexdigest(), "size": len(document)}


def invoice_ready_id(order_id: str) -> str:
    """The event id of an order's ``invoice.ready``: the same for every announcement of that order's invoice."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{saga.INVOICE_READY}:{order_id}").hex


def invoice_ready(
    order_id: str, claim: Mapping[str, Any], occurred_at: datetime, principal_sub: str | None = None
) -> saga.Event:
    """The ``invoice.ready`` event of an order: the saga's envelope with the claim check as its data.

    Its ``event_id`` is derived from the order id and ``occurred_at`` is the confirmation's time, so an invoice
    announced twice (a redelivered ``order.confirmed``) is the same event, byte for byte, to the consumers'
    inbox, which ignores the second.
    """
    data: dict[str, Any] = {"key": claim["key"], "sha256": claim["sha256"], "size": claim["size"]}
    if principal_sub:
        # Echoed from order.confirmed: billing applies the event in the shard of this principal's orders.
        data["principal"] = {"sub": principal_sub, "name": None}
    return saga.new_event(saga.INVOICE_READY, order_id, data, event_id=invoice_ready_id(order_id),
                          occurred_at=occurred_at.astimezone(UTC))
