"""The order contract shared by gateway (400) and billing (dead-letter): what is accepted and what is not."""

from decimal import Decimal

import pytest

from common.orders import InvalidOrder, Order, parse_order


def test_strings_and_numbers_are_both_accepted():
    """Clients send numbers as JSON strings or numbers; both give the same exact order."""
    as_strings = parse_order(b'{"user_id": "3", "number_of_items": "5", "total_amount": "180"}')
    as_numbers = parse_order(b'{"user_id": 3, "number_of_items": 5, "total_amount": 180}')
    assert as_strings == as_numbers == Order("3", 5, Decimal("180.00"))


def test_decimal_amount_is_kept_exact():
    """A JSON float is read as a decimal, so 0.1 + 0.2 style errors never reach the ledger."""
    order = parse_order(b'{"user_id": "u", "number_of_items": 1, "total_amount": 19.99}')
    assert order.total_amount == Decimal("19.99")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"user_id": "3", "number_of_items": "5"}', "missing field(s): total_amount"),
        (b'{"user_id": "3", "number_of_items": "5", "total_amount": "1", "coupon": "x"}', "unknown field(s): coupon"),
        (b'{"user_id": "", "number_of_items": "5", "total_amount": "1"}', "user_id"),
        (b'{"user_id": true, "number_of_items": "5", "total_amount": "1"}', "user_id"),
        (b'{"user_id": "3", "number_of_items": "-5", "total_amount": "1"}', "number_of_items"),
        (b'{"user_id": "3", "number_of_items": 0, "total_amount": "1"}', "between 1 and"),
        (b'{"user_id": "3", "number_of_items": 2.5, "total_amount": "1"}', "whole number"),
        (b'{"user_id": "3", "number_of_items": "five", "total_amount": "1"}', "whole number"),
        (b'{"user_id": "3", "number_of_items": 1, "total_amount": "-1"}', "must not be negative"),
        (b'{"user_id": "3", "number_of_items": 1, "total_amount": "abc"}', "total_amount must be"),
        (b'{"user_id": "3", "number_of_items": 1, "total_amount": NaN}', "total_amount"),
        (b'{"user_id": "3", "number_of_items": 1, "total_amount": "Infinity"}', "total_amount must be"),
        (b'{"user_id": "3", "number_of_items": 1, "total_amount": 1.001}', "two decimal places"),
        (b'{"user_id": "3", "number_of_items": 1, "total_amount": 1e20}', "at most"),
        (b'{"user_id": "3", "number_of_items": 1, "total_amount": "1e20"}', "total_amount must be"),
    ],
)
def test_invalid_orders_are_rejected_with_the_reason(body, reason):
    """Each broken rule raises InvalidOrder whose message names what is wrong."""
    with pytest.raises(InvalidOrder) as excinfo:
        parse_order(body)
    assert reason in str(excinfo.value)
