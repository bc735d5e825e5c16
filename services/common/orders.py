"""The order message contract, shared by the gateway (rejects bad orders with 400) and billing (dead-letters
bad messages from any other publisher). One definition, so the two can never disagree on what is valid.

An order is the JSON body posted to ``POST /api/billing``, e.g.
``{"user_id": "3", "number_of_items": "5", "total_amount": "180"}``; numbers may be JSON numbers or strings.
An optional ``"priority"`` (``"standard"``, the default, or ``"express"``) chooses the queue the order travels
on (``contract.messaging.PRIORITY_QUEUES``): express orders are stored ahead of standard ones.

A *purchase* (the saga of docs/patterns/saga.md) names a movie and a quantity as well:
``{"user_id": "3", "movie_id": 7, "quantity": 2, "total_amount": "25.00"}``. ``movie_id`` is a whole number from
1 to ``contract.limits.MAX_MOVIE_ID``, ``quantity`` one from 1 to ``contract.saga.MAX_QUANTITY``; the two come
together or not at all. ``number_of_items`` may then be left out and, when given, must equal ``quantity``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from common.amounts import InvalidAmount, parse_amount
from contract.limits import MAX_MOVIE_ID
from contract.messaging import DEFAULT_PRIORITY, PRIORITY_QUEUES
from contract.saga import MAX_QUANTITY

USER_ID_MAX_LENGTH = 64
MAX_ITEMS = 1_000_000
# numeric(12, 2) in billing_db: ten digits before the point, two after.
MAX_TOTAL_AMOUNT = Decimal("9999999999.99")
FIELDS = ("user_id", "number_of_items", "total_amount")
#: Fields an order may leave out, with the value it then has.
OPTIONAL_FIELDS = {"priority": DEFAULT_PRIORITY}
#: The fields that make an order a purchase: both or neither (``number_of_items`` is then optional).
PURCHASE_FIELDS = ("movie_id", "quantity")
#: The priorities an order may name, most urgent first.
PRIORITIES = tuple(PRIORITY_QUEUES)
_INTEGER = re.compile(r"^[0-9]+$")


class InvalidOrder(ValueError):
    """The order breaks the contract; ``str(error)`` says how.

    ``kind`` is a short, fixed label for metrics and dead-letter headers: ``invalid_json``, ``not_an_object``,
    ``missing_field``, ``unknown_field`` or ``invalid_value``.
    """

    def __init__(self, message: str, kind: str = "invalid_value"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Order:
    """A validated order, with numbers as exact types."""

    user_id: str
    number_of_items: int
    total_amount: Decimal
    priority: str = DEFAULT_PRIORITY
    """``standard`` or ``express`` (``contract.messaging.PRIORITY_QUEUES`` maps it to its queue)."""
    movie_id: int | None = None
    """The movie a purchase buys; None for a classic order."""
    quantity: int | None = None
    """How many copies a purchase buys (equal to ``number_of_items``); None for a classic order."""

    @property
    def is_purchase(self) -> bool:
        """True for a purchase (movie and quantity given): billing stores it pending and starts the saga."""
        return self.movie_id is not None


def _user_id(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise InvalidOrder("user_id must be a non-empty string or a non-negative integer")
    if isinstance(value, int):
        if value < 0:
            raise InvalidOrder("user_id must not be negative")
        if value >= 10**USER_ID_MAX_LENGTH:
            raise InvalidOrder(f"user_id must be at most {USER_ID_MAX_LENGTH} characters")
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidOrder("user_id must be a non-empty string or a non-negative integer")
    if len(value) > USER_ID_MAX_LENGTH:
        raise InvalidOrder(f"user_id must be at most {USER_ID_MAX_LENGTH} characters")
    if not value.isprintable():
        raise InvalidOrder("user_id must not contain control characters")
    return value


def _whole(value: Any, name: str, maximum: int) -> int:
    """A whole number from 1 to ``maximum``, given as a JSON integer or a string of digits."""
    if isinstance(value, bool):
        raise InvalidOrder(f"{name} must be a whole number")
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        digits = value.strip().lstrip("0") or "0"
        # Check the length first: int() refuses strings of more than 4300 digits with a ValueError.
        if len(digits) > len(str(maximum)):
            raise InvalidOrder(f"{name} must be between 1 and {maximum}")
        value = int(digits)
    if not isinstance(value, int):
        raise InvalidOrder(f"{name} must be a whole number, got {value!r}")
    if not 1 <= value <= maximum:
        raise InvalidOrder(f"{name} must be between 1 and {maximum}, got {value}")
    return value


def _number_of_items(value: Any) -> int:
    return _whole(value, "number_of_items", MAX_ITEMS)


def _total_amount(value: Any) -> Decimal:
    try:
        return parse_amount(value, field="total_amount", maximum=MAX_TOTAL_AMOUNT)
    except InvalidAmount as exc:
        raise InvalidOrder(str(exc)) from None


def _shown(value: Any) -> str:
    """A short description of a bad value for an error message: a short string quoted, else its JSON type."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 32 else "a long string"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "a number" if isinstance(value, int | Decimal) else f"an {'array' if isinstance(value, list) else 'object'}"


def _priority(value: Any) -> str:
    if value not in PRIORITIES:
        names = " or ".join(f'"{name}"' for name in sorted(PRIORITIES, key=lambda name: name != DEFAULT_PRIORITY))
        raise InvalidOrder(f"priority must be {names}, got {_shown(value)}")
    return value


def validate_order(data: Any) -> Order:
    """Check a decoded JSON value against the contract."""
    if not isinstance(data, dict):
        raise InvalidOrder(f"order must be a JSON object, got {type(data).__name__}", kind="not_an_object")
    purchase = [name for name in PURCHASE_FIELDS if name in data]
    # A purchase may leave number_of_items out: its quantity says it.
    required = [name for name in FIELDS if not (purchase and name == "number_of_items")]
    missing = [name for name in required if name not in data]
    if purchase and len(purchase) < len(PURCHASE_FIELDS):
        missing += [name for name in PURCHASE_FIELDS if name not in data]
    if missing:
        hint = " (a purchase needs both movie_id and quantity)" if purchase and len(purchase) == 1 else ""
        raise InvalidOrder(f"missing field(s): {', '.join(missing)}{hint}", kind="missing_field")
    unknown = sorted(set(data) - set(FIELDS) - set(OPTIONAL_FIELDS) - set(PURCHASE_FIELDS))
    if unknown:
        allowed = ", ".join((*FIELDS, *OPTIONAL_FIELDS, *PURCHASE_FIELDS))
        raise InvalidOrder(f"unknown field(s): {', '.join(unknown)}; allowed: {allowed}", kind="unknown_field")
    common = {
        "user_id": _user_id(data["user_id"]),
        "total_amount": _total_amount(data["total_amount"]),
        "priority": _priority(data.get("priority", OPTIONAL_FIELDS["priority"])),
    }
    if not purchase:
        return Order(number_of_items=_number_of_items(data["number_of_items"]), **common)
    movie_id = _whole(data["movie_id"], "movie_id", MAX_MOVIE_ID)
    quantity = _whole(data["quantity"], "quantity", MAX_QUANTITY)
    if "number_of_items" in data and _number_of_items(data["number_of_items"]) != quantity:
        raise InvalidOrder(f"number_of_items must equal quantity ({quantity}) in a purchase, or be left out")
    return Order(number_of_items=quantity, movie_id=movie_id, quantity=quantity, **common)


def parse_order(body: bytes) -> Order:
    """Decode and check an order message body (UTF-8 JSON); floats are read as exact decimals."""
    try:
        data = json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidOrder(f"body is not valid JSON: {exc}", kind="invalid_json") from None
    except (ValueError, RecursionError) as exc:
        # Integers beyond Python's 4300-digit limit, or nesting deep enough to exhaust the stack.
        raise InvalidOrder(f"body is not a usable JSON document: {type(exc).__name__}", kind="invalid_json") from None
    return validate_order(data)
