"""Money amounts in the API: the one parser and the one rendering, shared by orders' ``total_amount`` (gateway,
billing) and movies' ``price`` (inventory), so every amount is read and written by the same rules.

An amount arrives as a JSON number (decoded with ``parse_float=Decimal``, never as a binary float) or as a
decimal string (``"180"``, ``"19.99"``); it is non-negative, at most a given maximum, with at most two decimals.
It is answered as a string with exactly two decimals (``"180.00"``), the way ``numeric(p, 2)`` reads back.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

CENTS = Decimal("0.01")
# The documented string form of an amount. Decimal() alone would also take "1_000", "1e3" or "NaN".
_AMOUNT = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


class InvalidAmount(ValueError):
    """The value is not a valid amount; ``str(error)`` names the field and says why."""


def parse_amount(value: Any, *, field: str, maximum: Decimal) -> Decimal:
    """``value`` as an exact amount with two decimal places, or InvalidAmount naming ``field``.

    Accepted: an int, a Decimal (a JSON number decoded with ``parse_float=Decimal``) or a decimal string with
    optional surrounding spaces. Refused: bools, floats (a binary float is never exact), None, other types,
    exponents, NaN and infinities, negatives, anything above ``maximum`` or with more than two decimals.
    """
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise InvalidAmount(f"{field} must be a number or a numeric string")
    if isinstance(value, str) and not _AMOUNT.match(value.strip()):
        raise InvalidAmount(f'{field} must be a decimal number like "180" or "19.99", got {value!r}')
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidAmount(f"{field} must be a number, got {value!r}") from None
    if not amount.is_finite():
        raise InvalidAmount(f"{field} must be a finite number")
    if amount < 0:
        raise InvalidAmount(f"{field} must not be negative, got {value}")
    if amount > maximum:
        raise InvalidAmount(f"{field} must be at most {maximum}")
    if amount != amount.quantize(CENTS):
        raise InvalidAmount(f"{field} must have at most two decimal places")
    return amount.quantize(CENTS)


def render_amount(amount: Decimal | None) -> str | None:
    """An amount as the API answers it: a string with exactly two decimals (``"19.90"``), or None."""
    return None if amount is None else str(Decimal(amount).quantize(CENTS))
