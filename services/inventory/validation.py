"""Validation of movie requests: every rule a client can break, with a message that says which one.

The limits live in ``contract.limits`` because they are part of the public API (the gateway's OpenAPI
document quotes them).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from common.amounts import InvalidAmount, parse_amount
from contract.limits import DESCRIPTION_MAX_LENGTH, MAX_MOVIE_ID, MAX_PRICE, MAX_STOCK, TITLE_MAX_LENGTH
from contract.posters import CONTENT_TYPES

SEARCH_MAX_LENGTH = TITLE_MAX_LENGTH
MAX_ID = MAX_MOVIE_ID

#: Every field a movie request may carry; ``price`` and ``stock`` are optional and nullable.
_FIELDS = ("title", "description", "price", "stock")


class ValidationError(ValueError):
    """The request is malformed; ``str(error)`` is the message for the client."""


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be one JSON object; numbers with a fraction are read as exact decimals
    (a price of 19.99 is never a binary float)."""
    if not body.strip():
        raise ValidationError("request body must be a JSON object, got an empty body")
    try:
        data = json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        # Integers beyond Python's 4300-digit limit, or nesting deep enough to exhaust the stack.
        raise ValidationError(f"request body is not a usable JSON document: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"request body must be a JSON object, got {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages (a client sent JSON, not Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _check_text(name: str, value: Any, max_length: int, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValidationError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {_json_type(value)}")
    if required and not value.strip():
        raise ValidationError(f"{name} must not be empty")
    if len(value) > max_length:
        raise ValidationError(f"{name} must be at most {max_length} characters, got {len(value)}")
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database.
        raise ValidationError(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{name} contains an unpaired surrogate and is not valid Unicode") from None
    return value


def _check_price(value: Any) -> Decimal | None:
    """``price``: null, or an amount from 0 to MAX_PRICE with at most two decimals, by the rules of orders'
    ``total_amount`` (``common.amounts``): a JSON number or a decimal string."""
    if value is None:
        return None
    try:
        return parse_amount(value, field="price", maximum=MAX_PRICE)
    except InvalidAmount as exc:
        raise ValidationError(f"{exc} (or null for no price)") from None


def _check_stock(value: Any) -> int | None:
    """``stock``: null (not for sale), or a whole JSON number from 0 to MAX_STOCK."""
    if value is None:
        return None
    rule = f"stock must be a whole number from 0 to {MAX_STOCK} (or null: not for sale)"
    # A bool is an int in Python but not a number in JSON; 3.0 and "3" are refused rather than guessed at.
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(value)[:40] if isinstance(value, str) else _json_type(value)
        raise ValidationError(f"{rule}, got {shown}")
    if not 0 <= value <= MAX_STOCK:
        raise ValidationError(f"{rule}, got {value}" if abs(value) < 10**12 else f"{rule}, got a larger number")
    return value


def _reject_unknown(data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        allowed = ", ".join(sorted(_FIELDS))
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}; allowed: {allowed}")


def _sale_fields(data: dict[str, Any]) -> dict[str, Any]:
    """``price`` and ``stock`` when the request names them (null included); absent ones are left out."""
    fields: dict[str, Any] = {}
    if "price" in data:
        fields["price"] = _check_price(data["price"])
    if "stock" in data:
        fields["stock"] = _check_stock(data["stock"])
    return fields


def validate_new_movie(data: dict[str, Any]) -> dict[str, Any]:
    """Fields for a new movie: ``title`` required, ``description`` optional (string or null); ``price`` and
    ``stock`` optional (null when absent), returned only when given."""
    _reject_unknown(data)
    return {
        "title": _check_text("title", data.get("title"), TITLE_MAX_LENGTH, required=True),
        "description": _check_text(
            "description", data.get("description"), DESCRIPTION_MAX_LENGTH, required=False
        ),
        **_sale_fields(data),
    }


def validate_movie_update(data: dict[str, Any]) -> dict[str, Any]:
    """Fields to change on an existing movie: at least one of ``title``, ``description``, ``price`` and
    ``stock``; null clears description, price and stock."""
    _reject_unknown(data)
    if not data:
        raise ValidationError("nothing to update: give title, description, price and/or stock")
    fields: dict[str, Any] = {}
    if "title" in data:
        fields["title"] = _check_text("title", data["title"], TITLE_MAX_LENGTH, required=True)
    if "description" in data:
        fields["description"] = _check_text(
            "description", data["description"], DESCRIPTION_MAX_LENGTH, required=False
        )
    return {**fields, **_sale_fields(data)}


def validate_search(title: str | None) -> str | None:
    """The ``title`` query parameter of ``GET /api/movies``: any text up to the title length limit."""
    if title is None or title == "":
        return None
    if len(title) > SEARCH_MAX_LENGTH:
        raise ValidationError(f"title search must be at most {SEARCH_MAX_LENGTH} characters")
    if "\x00" in title:
        raise ValidationError("title search must not contain NUL characters")
    return title


def validate_poster_request(data: dict[str, Any]) -> str:
    """The body of ``POST /api/movies/<id>/poster``: ``{"content_type": one of contract.posters.CONTENT_TYPES}``;
    the content type is returned."""
    allowed = ", ".join(CONTENT_TYPES)
    unknown = sorted(set(data) - {"content_type"})
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}; allowed: content_type")
    content_type = data.get("content_type")
    if not isinstance(content_type, str) or content_type not in CONTENT_TYPES:
        shown = repr(content_type)[:100] if content_type is not None else "nothing"
        raise ValidationError(f"content_type must be one of {allowed}; got {shown}")
    return content_type
