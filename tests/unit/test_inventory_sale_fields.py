"""Validation of a movie's stock and price (inventory) and the shared amount rules behind price (common.amounts)."""

from decimal import Decimal

import pytest

from common.amounts import InvalidAmount, parse_amount, render_amount
from common.orders import MAX_TOTAL_AMOUNT
from contract.limits import MAX_PRICE, MAX_STOCK
from gateway.openapi import build_spec
from inventory.validation import ValidationError, parse_json_object, validate_movie_update, validate_new_movie


def _new(body: bytes) -> dict:
    return validate_new_movie(parse_json_object(body))


def test_price_and_stock_are_returned_when_given():
    """A new movie with stock and price has them as an int and an exact two-decimal Decimal."""
    assert _new(b'{"title": "Stalker", "stock": 3, "price": "19.9"}') == {
        "title": "Stalker", "description": None, "stock": 3, "price": Decimal("19.90")}


def test_price_as_a_json_number_is_read_exactly():
    """19.99 in the body becomes Decimal("19.99"), not the binary float 19.989999..."""
    assert _new(b'{"title": "x", "price": 19.99}')["price"] == Decimal("19.99")


def test_null_is_kept_as_null():
    """stock: null and price: null are valid (not for sale, no price) and kept as None."""
    assert _new(b'{"title": "x", "stock": null, "price": null}') == {
        "title": "x", "description": None, "stock": None, "price": None}


def test_update_may_set_only_the_price():
    """An update with price alone is valid and names only the price."""
    assert validate_movie_update({"price": 5}) == {"price": Decimal("5.00")}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"title": "x", "price": true}', "price must be a number"),
        (b'{"title": "x", "price": 1.005}', "price must have at most two decimal places"),
        (b'{"title": "x", "price": "10000000"}', f"price must be at most {MAX_PRICE}"),
        (b'{"title": "x", "price": -0.01}', "price must not be negative"),
        (b'{"title": "x", "price": "1e3"}', "price must be a decimal number"),
        (b'{"title": "x", "price": NaN}', "price must be a number"),
        (b'{"title": "x", "stock": false}', "stock must be a whole number"),
        (b'{"title": "x", "stock": 2.0}', "got number"),
        (b'{"title": "x", "stock": "2"}', "got '2'"),
        (b'{"title": "x", "stock": -1}', "got -1"),
        (b'{"title": "x", "stock": 1000000001}', f"from 0 to {MAX_STOCK}"),
    ],
)
def test_bad_price_or_stock_is_rejected_naming_the_field(body, reason):
    """Every rule of price and stock gives a message that names the field and the rule."""
    with pytest.raises(ValidationError) as excinfo:
        _new(body)
    assert reason in str(excinfo.value)


def test_a_huge_stock_gives_a_short_message():
    """A stock of a thousand digits is refused without echoing the digits back."""
    with pytest.raises(ValidationError) as excinfo:
        _new(b'{"title": "x", "stock": 1' + b"0" * 1000 + b"}")
    assert len(str(excinfo.value)) < 200


def test_unknown_field_lists_stock_and_price_as_allowed():
    """The unknown-field message names the new fields among the allowed ones."""
    with pytest.raises(ValidationError, match="allowed: description, price, stock, title"):
        validate_new_movie({"title": "x", "currency": "EUR"})


def test_price_and_total_amount_share_the_rules_but_not_the_maximum():
    """The one amount parser serves both: a price above MAX_PRICE is refused, the same value is a valid total."""
    value = MAX_PRICE + 1
    assert parse_amount(value, field="total_amount", maximum=MAX_TOTAL_AMOUNT) == value
    with pytest.raises(InvalidAmount, match=r"^price must be at most"):
        parse_amount(value, field="price", maximum=MAX_PRICE)


@pytest.mark.parametrize(("amount", "shown"), [(Decimal("5"), "5.00"), (Decimal("19.9"), "19.90"), (None, None)])
def test_amounts_are_rendered_with_two_decimals(amount, shown):
    """Amounts are answered as strings with exactly two decimals (null stays null), as billing answers totals."""
    assert render_amount(amount) == shown


def test_openapi_documents_stock_and_price_with_the_enforced_limits():
    """The gateway's OpenAPI document offers stock and price on create and update with inventory's limits, and
    every movie answer carries both."""
    schemas = build_spec()["components"]["schemas"]
    for name in ("NewMovie", "MovieUpdate"):
        properties = schemas[name]["properties"]
        assert properties["stock"]["maximum"] == MAX_STOCK
        assert {"type": "number", "minimum": 0, "maximum": float(MAX_PRICE)} in properties["price"]["oneOf"]
    assert {"stock", "price"} <= set(schemas["Movie"]["required"])
