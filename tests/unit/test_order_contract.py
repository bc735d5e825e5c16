"""The order contract shared by gateway (400) and billing (dead-letter): which bodies are orders, and the
reason and kind for those that never can be. The one home of these cases; ``test_billing_orders`` tests only
what billing adds (the size limit)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from common.orders import InvalidOrder, Order, parse_order


def body(**fields: object) -> bytes:
    """An order body with the given fields (defaults fill the rest; a value of ... drops the field)."""
    order: dict[str, object] = {"user_id": "3", "number_of_items": "5", "total_amount": "180"}
    order.update(fields)
    return json.dumps({k: v for k, v in order.items() if v is not ...}).encode()


def rejection(raw: bytes) -> InvalidOrder:
    """The InvalidOrder that parsing ``raw`` raises."""
    with pytest.raises(InvalidOrder) as excinfo:
        parse_order(raw)
    return excinfo.value


def test_the_documented_example_is_accepted():
    """The body from the README becomes exact Python values."""
    assert parse_order(b'{"user_id": "3", "number_of_items": "5", "total_amount": "180"}') == Order(
        "3", 5, Decimal("180.00")
    )


def test_numbers_and_numeric_strings_give_the_same_order():
    """Clients send numbers as JSON numbers or strings; both mean the same order."""
    assert parse_order(body(user_id=3, number_of_items=5, total_amount=180)) == parse_order(body())


def test_amount_with_cents_is_exact():
    """19.99 as a JSON number is read as a decimal, never as a binary float."""
    assert parse_order(b'{"user_id": "u", "number_of_items": 1, "total_amount": 19.99}').total_amount == Decimal(
        "19.99"
    )


def test_zero_amount_is_accepted():
    """A free order (0) is valid: only negative amounts are refused."""
    assert parse_order(body(total_amount="0")).total_amount == Decimal("0.00")


def test_surrounding_spaces_in_numeric_strings_are_tolerated():
    """Numbers with spaces around them, as a form might send them, are read as numbers."""
    order = parse_order(body(number_of_items=" 5 ", total_amount=" 180.50 "))
    assert (order.number_of_items, order.total_amount) == (5, Decimal("180.50"))


def test_unicode_user_id_is_kept_as_sent():
    """Any printable Unicode is a valid user id, stored unchanged."""
    assert parse_order(body(user_id="ユーザー-ß-😀")).user_id == "ユーザー-ß-😀"


def test_utf8_byte_order_mark_is_accepted():
    """Some Windows clients prefix UTF-8 with a BOM; it is not part of the document."""
    assert parse_order(b"\xef\xbb\xbf" + body()).user_id == "3"


def test_largest_values_are_accepted():
    """The bounds themselves are valid: 1,000,000 items and 9,999,999,999.99."""
    order = parse_order(body(number_of_items=1_000_000, total_amount="9999999999.99"))
    assert (order.number_of_items, order.total_amount) == (1_000_000, Decimal("9999999999.99"))


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        (b"not json", "invalid_json", "not valid JSON"),
        (b"", "invalid_json", "not valid JSON"),
        (b'{"user_id": "3", "number_of_items": "5", "total_amount": "180"', "invalid_json", "not valid JSON"),
        (b"\xff\xfe\x00", "invalid_json", "not valid JSON"),
        (b"\xff\xfe", "invalid_json", "not valid JSON"),
        (b"[" * 30_000 + b"]" * 30_000, "invalid_json", "not a usable JSON document"),
        (b'{"user_id": 1' + b"0" * 5000 + b"}", "invalid_json", "not a usable JSON document"),
        (b'"just a string"', "not_an_object", "must be a JSON object"),
        (b"null", "not_an_object", "must be a JSON object"),
        (b"[]", "not_an_object", "must be a JSON object"),
        (b"[1, 2]", "not_an_object", "must be a JSON object"),
        (b"{}", "missing_field", "missing field(s): user_id, number_of_items, total_amount"),
    ],
)
def test_bodies_that_are_not_order_objects_are_rejected(raw, kind, reason):
    """Broken JSON, non-objects and empty objects are refused with a kind and a readable reason."""
    error = rejection(raw)
    assert (error.kind, reason in str(error)) == (kind, True)


@pytest.mark.parametrize("field", ["user_id", "number_of_items", "total_amount"])
def test_each_missing_field_is_named(field):
    """The reason names the field that is missing."""
    error = rejection(body(**{field: ...}))
    assert (error.kind, str(error)) == ("missing_field", f"missing field(s): {field}")


@pytest.mark.parametrize("extra", ["currency", "coupon"])
def test_unknown_fields_are_rejected_not_ignored(extra):
    """An extra field (say a currency) might change what the order means, so it is not silently dropped."""
    error = rejection(body(**{extra: "x"}))
    assert error.kind == "unknown_field" and f"unknown field(s): {extra}" in str(error)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"user_id": ""}, "user_id"),
        ({"user_id": "   "}, "user_id"),
        ({"user_id": None}, "user_id"),
        ({"user_id": True}, "user_id"),
        ({"user_id": -1}, "must not be negative"),
        ({"user_id": 3.5}, "user_id"),
        ({"user_id": ["3"]}, "user_id"),
        ({"user_id": "x" * 65}, "at most 64 characters"),
        ({"user_id": 10**64}, "at most 64 characters"),
        ({"user_id": "a\x00b"}, "control characters"),
        ({"user_id": "line\nbreak"}, "control characters"),
        ({"user_id": "\ud800"}, "control characters"),
    ],
)
def test_invalid_user_ids_are_rejected(fields, reason):
    """Empty, non-string, over-long ids and ids PostgreSQL could not store (NUL, lone surrogates) are refused."""
    error = rejection(body(**fields))
    assert error.kind == "invalid_value" and reason in str(error)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-5", "whole number"),
        (-5, "between 1 and"),
        (0, "between 1 and"),
        ("0", "between 1 and"),
        (1_000_001, "between 1 and"),
        ("9" * 5000, "between 1 and"),
        (2.5, "whole number"),
        (5.0, "whole number"),
        ("2.5", "whole number"),
        ("five", "whole number"),
        ("", "whole number"),
        ("١٢", "whole number"),
        (True, "whole number"),
        (None, "whole number"),
        ({"n": 5}, "whole number"),
    ],
)
def test_invalid_item_counts_are_rejected(value, reason):
    """Item counts are whole numbers from 1 to 1,000,000: no fractions, signs, words or huge digit strings."""
    error = rejection(body(number_of_items=value))
    assert error.kind == "invalid_value" and reason in str(error)


@pytest.mark.parametrize(
    ("raw_amount", "reason"),
    [
        ('"-1"', "must not be negative"),
        ("-0.01", "must not be negative"),
        ('"abc"', "total_amount must be"),
        ('""', "total_amount must be"),
        ('"1_000"', "total_amount must be"),
        ('"1e3"', "total_amount must be"),
        ('"1e20"', "total_amount must be"),
        ('"NaN"', "total_amount must be"),
        ('"Infinity"', "total_amount must be"),
        ("NaN", "total_amount must be"),
        ("Infinity", "total_amount must be"),
        ("-Infinity", "total_amount must be"),
        ("1e400", "at most"),
        ("10000000000", "at most"),
        ("1e20", "at most"),
        ('"99999999999999999999999999"', "at most"),
        ("1.001", "two decimal places"),
        ('"0.001"', "two decimal places"),
        ("true", "total_amount must be"),
        ("null", "total_amount must be"),
        ("[1]", "total_amount must be"),
    ],
)
def test_invalid_amounts_are_rejected(raw_amount, reason):
    """Amounts are finite, non-negative, at most 9,999,999,999.99, with at most two decimals."""
    raw = b'{"user_id": "3", "number_of_items": 1, "total_amount": ' + raw_amount.encode() + b"}"
    error = rejection(raw)
    assert error.kind == "invalid_value" and reason in str(error)


# --- purchases (issue 15: the saga) ----------------------------------------------------------------------------
def purchase(**fields: object) -> bytes:
    """A purchase body: movie and quantity, no number_of_items (a value of ... drops a field)."""
    return body(**{"number_of_items": ..., "movie_id": 7, "quantity": 2, "total_amount": "25.00", **fields})


def test_a_purchase_carries_movie_and_quantity_and_counts_its_items():
    """movie_id and quantity make a purchase; number_of_items may be left out and becomes the quantity."""
    order = parse_order(purchase())
    assert (order.is_purchase, order.movie_id, order.quantity, order.number_of_items) == (True, 7, 2, 2)


def test_a_classic_order_is_not_a_purchase():
    """Without movie_id and quantity nothing changes: no movie, no quantity."""
    order = parse_order(body())
    assert (order.is_purchase, order.movie_id, order.quantity) == (False, None, None)


def test_a_purchase_may_repeat_the_quantity_as_number_of_items():
    """number_of_items equal to quantity is accepted (older clients send it always)."""
    assert parse_order(purchase(number_of_items=2)).number_of_items == 2


def test_a_purchase_whose_number_of_items_differs_from_its_quantity_is_rejected():
    """Two different counts in one order: which one would be billed? Refused, saying so."""
    error = rejection(purchase(number_of_items=3))
    assert "number_of_items must equal quantity (2)" in str(error)


@pytest.mark.parametrize("present", ["movie_id", "quantity"])
def test_half_a_purchase_is_rejected_naming_the_missing_field(present):
    """movie_id without quantity (or the reverse) is a missing field, with a hint that both are needed."""
    other = "quantity" if present == "movie_id" else "movie_id"
    error = rejection(purchase(**{other: ...}))
    assert error.kind == "missing_field"
    assert other in str(error) and "needs both movie_id and quantity" in str(error)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"movie_id": 0}, "movie_id must be between 1 and"),
        ({"movie_id": 2**63}, "movie_id must be between 1 and"),
        ({"movie_id": "seven"}, "movie_id must be a whole number"),
        ({"movie_id": True}, "movie_id must be a whole number"),
        ({"movie_id": 1.5}, "movie_id must be a whole number"),
        ({"quantity": 0}, "quantity must be between 1 and 1000"),
        ({"quantity": 1001}, "quantity must be between 1 and 1000"),
        ({"quantity": None}, "quantity must be a whole number"),
    ],
)
def test_bad_purchase_values_are_rejected_with_the_rule(fields, message):
    """Out-of-range or non-integral movie ids and quantities are invalid values, with the rule in the reason."""
    error = rejection(purchase(**fields))
    assert error.kind == "invalid_value"
    assert message in str(error)


def test_purchase_numbers_may_be_strings_of_digits_like_number_of_items():
    """As for number_of_items, "7" and 7 are the same movie id."""
    assert parse_order(purchase(movie_id="7", quantity=" 2 ")) == parse_order(purchase())


def test_the_unknown_field_reason_lists_the_purchase_fields_as_allowed():
    """A client misspelling a field learns that movie_id and quantity exist."""
    assert "movie_id, quantity" in str(rejection(body(movie="7")))
