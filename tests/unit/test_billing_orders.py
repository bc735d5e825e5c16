"""billing.orders: what billing adds to the order contract (whose cases are in test_order_contract): a size
limit, checked before anything is decoded."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.orders import MAX_MESSAGE_BYTES, InvalidOrder, Order, parse_order
from contract.limits import MAX_REQUEST_BYTES


def test_a_body_within_the_limit_is_parsed_by_the_contract():
    """Below the limit, billing's parser is the contract's."""
    assert parse_order(b'{"user_id": "3", "number_of_items": "5", "total_amount": "180"}') == Order(
        "3", 5, Decimal("180.00")
    )


def test_billing_reads_what_the_gateway_accepts():
    """The message limit is the gateway's request limit: an order the gateway took is never too large here."""
    assert MAX_MESSAGE_BYTES == MAX_REQUEST_BYTES


def test_oversized_body_is_rejected_before_parsing():
    """A body over MAX_MESSAGE_BYTES is refused without being decoded."""
    raw = b'{"user_id": "' + b"x" * MAX_MESSAGE_BYTES + b'", "number_of_items": "5", "total_amount": "180"}'
    with pytest.raises(InvalidOrder) as excinfo:
        parse_order(raw)
    assert excinfo.value.kind == "too_large"
