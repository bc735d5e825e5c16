"""The invoicer's messages: ``order.confirmed`` read strictly, ``invoice.ready`` built (contract.invoices).

A body that cannot be an ``order.confirmed`` event raises :class:`Malformed` with the reason: no retry can
fix it, so it must end in the dead-letter queue, never as a wrong invoice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from contract import invoices as C

from .render import InvoiceLine

#: Largest quantity and amount an order may have (the API's limits; anything above is not one of ours).
MAX_QUANTITY = 1000
MAX_AMOUNT = Decimal("9999999.99")
MAX_PRINCIPAL_CHARS = 256
#: Namespace of invoice.ready event ids: derived from the order, so a replay announces the same event.
_EVENT_NAMESPACE = uuid.UUID("6f1c2a5e-4b7d-4c1e-9a3f-2d8e5b6c7a10")


class Malformed(ValueError):
    """The message is not an ``order.confirmed`` event the invoicer can use; ``str()`` says why."""


def _amount(data: Mapping[str, Any], name: str) -> Decimal:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Malformed(f"data.{name} must be a number or a numeric string, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Malformed(f"data.{name} is not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        raise Malformed(f"data.{name} must be between 0 and {MAX_AMOUNT}, got {value!r}")
    if amount != amount.quantize(Decimal("0.01")):
        raise Malformed(f"data.{name} must have at most two decimal places, got {value!r}")
    return amount


def _positive_int(data: Mapping[str, Any], name: str, limit: int | None = None) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (limit and value > limit):
        bound = f"between 1 and {limit}" if limit else "a positive integer"
        raise Malformed(f"data.{name} must be {bound}, got {value!r}")
    return value


def _occurred_at(value: Any) -> datetime:
    if not isinstance(value, str):
        raise Malformed(f"occurred_at must be an ISO 8601 timestamp, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"occurred_at is not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        raise Malformed(f"occurred_at must carry a time zone (e.g. 'Z'), got {value!r}")
    return moment.astimezone(UTC)


def parse_confirmed(body: bytes | str | Mapping[str, Any]) -> InvoiceLine:
    """The invoice line of an ``order.confirmed`` event body; Malformed with the reason otherwise."""
    if isinstance(body, (bytes, str)):
        try:
            event = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Malformed("the message is not JSON") from None
    else:
        event = body
    if not isinstance(event, Mapping):
        raise Malformed("the message is not a JSON object")
    if event.get("type") != C.ORDER_CONFIRMED:
        raise Malformed(f"the event type is {event.get('type')!r}, not {C.ORDER_CONFIRMED!r}")
    order_id = event.get("order_id")
    if not C.valid_order_id(order_id):
        raise Malformed(f"order_id must be 1 to 64 letters, digits, '-' or '_', got {order_id!r}")
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise Malformed("the event has no data object")
    principal = data.get("principal")
    if not isinstance(principal, str) or not principal.strip() or len(principal) > MAX_PRINCIPAL_CHARS:
        raise Malformed(f"data.principal must be a non-empty string of at most {MAX_PRINCIPAL_CHARS} characters")
    title = data.get("title")
    if title is not None and not isinstance(title, str):
        raise Malformed(f"data.title must be a string when given, got {title!r}")
    quantity = _positive_int(data, "quantity", MAX_QUANTITY)
    unit_price, total = _amount(data, "unit_price"), _amount(data, "total_amount")
    if unit_price * quantity != total:
        # The invoice would contradict itself; billing checked this before confirming, so it is not ours.
        raise Malformed(f"data.total_amount {total} is not unit_price {unit_price} x quantity {quantity}")
    return InvoiceLine(
        order_id=order_id,
        ordered_at=_occurred_at(event.get("occurred_at")),
        principal=principal,
        movie_id=_positive_int(data, "movie_id"),
        title=title,
        quantity=quantity,
        unit_price=unit_price,
        total_amount=total,
    )


def claim_check(key: str, document: bytes) -> dict[str, Any]:
    """The claim check of a stored document: ``{"key", "sha256", "size"}``, never the bytes."""
    return {"key": key, "sha256": hashlib.sha256(document).hexdigest(), "size": len(document)}


def invoice_ready(order_id: str, claim: Mapping[str, Any], occurred_at: datetime) -> dict[str, Any]:
    """The ``invoice.ready`` event of an order: the saga's envelope with the claim check as its data.

    Its ``event_id`` is derived from the order id, so an invoice announced twice (a redelivered
    ``order.confirmed``) is the same event to the consumers' inbox, which ignores the second.
    """
    return {
        "event_id": str(uuid.uuid5(_EVENT_NAMESPACE, f"{C.INVOICE_READY}:{order_id}")),
        "type": C.INVOICE_READY,
        "order_id": order_id,
        "occurred_at": occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"key": claim["key"], "sha256": claim["sha256"], "size": claim["size"]},
    }
