"""What makes an order a purchase in billing: its saga states, its principal, and its ``order.placed`` event.

Shared by the store (which adds ``order.placed`` with the row), the batch (which dead-letters a purchase that
cannot start its saga) and the saga handler (``billing.saga``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contract import saga

if TYPE_CHECKING:
    from billing.store import OrderRecord

#: A purchase's saga status (``orders.purchase_status``): waiting for inventory, confirmed, or rejected.
PENDING, CONFIRMED, REJECTED = "pending", "confirmed", "rejected"
#: The principal named in a purchase's events when its message carried none (a gateway with auth off).
ANONYMOUS = "anonymous"


def principal_of(owner_sub: str | None, owner_name: str | None) -> dict[str, str | None]:
    """The ``principal`` of a purchase's events: who placed it (``ANONYMOUS`` when its message named nobody)."""
    return {"sub": owner_sub or ANONYMOUS, "name": owner_name}


def placed_event(record: OrderRecord) -> saga.Event:
    """The ``order.placed`` event of a purchase record; ValueError when it cannot be one (no usable id)."""
    order = record.order
    if not record.message_id:
        raise ValueError("a purchase needs a message id (its order id in the saga); this message has none")
    try:
        return saga.new_event(saga.ORDER_PLACED, record.message_id, {
            "movie_id": order.movie_id, "quantity": order.quantity, "total_amount": order.total_amount,
            "principal": principal_of(record.owner.sub if record.owner else None,
                                      record.owner.name if record.owner else None),
        })
    except saga.InvalidEvent as exc:
        raise ValueError(f"the purchase cannot start its saga: {exc}") from None

