"""Order ids (gateway.order_ids) and the list cursor (billing.order_status): what is accepted and refused."""

from __future__ import annotations

import pytest

from billing.order_status import InvalidCursor, decode_cursor, encode_cursor
from gateway.order_ids import ORDER_ID, OrderIdSigner

KEY = bytes(range(32))


@pytest.fixture
def signer() -> OrderIdSigner:
    return OrderIdSigner(KEY)


def test_issued_id_verifies_for_its_owner(signer):
    """An id the gateway issued to a principal verifies for that principal and looks like an order id."""
    order_id = signer.issue("sub-alice")
    assert ORDER_ID.fullmatch(order_id)
    assert signer.verify(order_id, "sub-alice")


def test_issued_id_does_not_verify_for_another_principal(signer):
    """Someone else's id is refused for a normal reader (the owner tag binds it)."""
    assert not signer.verify(signer.issue("sub-alice"), "sub-bob")


def test_reader_of_all_orders_skips_only_the_owner_binding(signer):
    """With any_owner (billing.read) someone else's issued id verifies; a made-up one still does not."""
    assert signer.verify(signer.issue("sub-alice"), "sub-admin", any_owner=True)
    assert not signer.verify("0" * 64, "sub-admin", any_owner=True)


def test_made_up_id_is_refused(signer):
    """A well-formed id with a forged issue tag is refused even if its owner tag were right."""
    order_id = signer.issue("sub-alice")
    forged = order_id[:32] + ("0" * 16 if order_id[32:48] != "0" * 16 else "1" * 16) + order_id[48:]
    assert not signer.verify(forged, "sub-alice")


def test_id_of_another_key_is_refused(signer):
    """An id signed with a different key (another environment) is refused."""
    other = OrderIdSigner(bytes(32))
    assert not signer.verify(other.issue("sub-alice"), "sub-alice")


@pytest.mark.parametrize("text", ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65])
def test_malformed_ids_are_refused(signer, text):
    """Anything but 64 lowercase hex digits is not an order id."""
    assert not signer.verify(text, "sub-alice", any_owner=True)


def test_key_setting_is_required_with_auth_on():
    """No ORDER_ID_KEY with authentication on: the gateway refuses to start."""
    with pytest.raises(ValueError, match="ORDER_ID_KEY"):
        OrderIdSigner.from_setting("", auth_required=True)


@pytest.mark.parametrize("text", ["zz" * 32, "00" * 16])
def test_bad_or_short_key_setting_is_refused(text):
    """A key that is not hex, or shorter than 256 bits, is a configuration error."""
    with pytest.raises(ValueError):
        OrderIdSigner.from_setting(text, auth_required=True)


def test_key_setting_in_hex_signs_like_the_same_bytes():
    """ORDER_ID_KEY is the key in hex: two gateways given the same setting accept each other's ids."""
    first = OrderIdSigner.from_setting(KEY.hex(), auth_required=True)
    assert OrderIdSigner(KEY).verify(first.issue("sub-alice"), "sub-alice")


@pytest.mark.parametrize("row_id", [1, 42, 2**63 - 1])
def test_cursor_round_trips(row_id):
    """A cursor decodes to the row id it was made from, and is URL-safe text."""
    cursor = encode_cursor(row_id)
    assert decode_cursor(cursor) == row_id
    assert cursor.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "cursor", ["", "not a cursor", "bzE6", encode_cursor(1)[:-2], "bzE6LTE", "x" * 65, "bzE6MA", "MTIz"]
)
def test_foreign_cursors_are_refused(cursor):
    """Text this API did not hand out (garbage, truncated, zero, negative, unprefixed) is InvalidCursor."""
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)
