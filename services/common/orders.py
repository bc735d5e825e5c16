"""The order message contract, shared by the gateway (rejects bad orders with 400) and billing (dead-letters
bad messages from any other publisher). One definition, so the two can never disagree on what is valid.

An order is the JSON body posted to ``POST /api/billing``, e.g.
``{"user_id": "3", "number_of_items": "5", "total_amount": "180"}``; numbers may be JSON numbers or strings.
An optional ``"priority"`` (``"standard"``, the default, or ``"express"``) chooses the queue the order travels
on (``contract.messaging.PRIORITY_QUEUES``): express orders are stored ahead of standard ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from common.amounts import InvalidAmount, parse_amount
from contract.messaging import DEFAULT_PRIORITY, PRIORITY_QUEUES

USER_ID_MAX_LENGTH = 64
MAX_ITEMS = 1_000_000
# numeric(12, 2) in billing_db: ten digits before the point, two after.
MAX_TOTAL_AMOUNT = Decimal("9999999999.99")
FIELDS = ("user_id", "number_of_items", "total_amount")
#: Fields an order may leave out, with the value it then has.
OPTIONAL_FIELDS = {"priority": DEFAULT_PRIORITY}
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


def _number_of_items(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidOrder("number_of_items must be a whole number")
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        digits = value.strip().lstrip("0") or "0"
        # Check the length first: int() refuses strings of more than 4300 digits with a ValueError.
        if len(digits) > len(str(MAX_ITEMS)):
            raise InvalidOrder(f"number_of_items must be between 1 and {MAX_ITEMS}")
        value = int(digits)
    if not isinstance(value, int):
        raise InvalidOrder(f"number_of_items must be a whole number, got {value!r}")
    if not 1 <= value <= MAX_ITEMS:
        raise InvalidOrder(f"number_of_items must be between 1 and {MAX_ITEMS}, got {value}")
    return value


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
    missing = [name for name in FIELDS if name not in data]
    if missing:
        raise InvalidOrder(f"missing field(s): {', '.join(missing)}", kind="missing_field")
    unknown = sorted(set(data) - set(FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        allowed = ", ".join((*FIELDS, *OPTIONAL_FIELDS))
        raise InvalidOrder(f"unknown field(s): {', '.join(unknown)}; allowed: {allowed}", kind="unknown_field")
    return Order(
        user_id=_user_id(data["user_id"]),
        number_of_items=_number_of_items(data["number_of_items"]),
        total_amount=_total_amount(data["total_amount"]),
        priority=_priority(data.get("priority", OPTIONAL_FIELDS["priority"])),
    )


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
