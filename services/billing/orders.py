"""From a message body to an order billing can store, or to the reason it never can be.

The order contract itself lives in :mod:`common.orders`, so the gateway (which answers 400) and billing (which
dead-letters) can never disagree about what is valid. This module adds what only a consumer needs: a size
limit before parsing, and a body that is not an order is reported with a fixed ``kind`` for metrics and the
dead-letter headers.

Rules, as documented in services/billing/README.md:

- the body is UTF-8 JSON, at most ``MAX_MESSAGE_BYTES``, holding one object with exactly the fields
  ``user_id``, ``number_of_items`` and ``total_amount``, and optionally ``priority`` and the purchase fields
  (unknown fields are rejected, not ignored: a field billing does not store, such as a currency, could change
  what the order means);
- ``user_id``: non-empty printable string of at most 64 characters, or a non-negative integer;
- ``number_of_items``: whole number from 1 to 1,000,000, as a JSON integer or a string of digits;
- ``total_amount``: 0 to 9,999,999,999.99 with at most two decimals, as a JSON number or a decimal string;
  NaN, infinities, exponents in strings, negative values are rejected;
- ``priority``: ``"standard"`` (the default) or ``"express"``, stored with the order;
- ``movie_id`` and ``quantity`` (a purchase): both or neither, whole numbers (``quantity`` 1 to 1,000);
  ``number_of_items`` may then be left out and, given, must equal ``quantity``.
"""

from __future__ import annotations

from common.orders import FIELDS, InvalidOrder, Order
from common.orders import parse_order as _parse_contract
from contract.limits import MAX_REQUEST_BYTES

__all__ = ["FIELDS", "MAX_MESSAGE_BYTES", "InvalidOrder", "Order", "parse_order"]

#: Largest body billing reads: what the gateway accepts (a real order is under 200 bytes).
MAX_MESSAGE_BYTES = MAX_REQUEST_BYTES


def parse_order(body: bytes) -> Order:
    """Decode one message body into an :class:`Order`.

    Raises :class:`InvalidOrder` whose ``str()`` is the human reason and whose ``kind`` is one of
    ``too_large``, ``invalid_json``, ``not_an_object``, ``missing_field``, ``unknown_field``, ``invalid_value``.
    Such a message can never succeed, however often it is retried: it belongs in the dead-letter queue.
    """
    if len(body) > MAX_MESSAGE_BYTES:
        raise InvalidOrder(f"body is {len(body)} bytes; at most {MAX_MESSAGE_BYTES} are accepted", kind="too_large")
    return _parse_contract(body)
