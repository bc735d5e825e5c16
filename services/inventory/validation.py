"""Validation of movie requests: every rule a client can break, with a message that says which one.

The limits live in ``contract.limits`` because they are part of the public API (the gateway's OpenAPI
document quotes them).
"""

from __future__ import annotations

import json
from typing import Any

from contract.limits import DESCRIPTION_MAX_LENGTH, MAX_MOVIE_ID, TITLE_MAX_LENGTH
from contract.posters import CONTENT_TYPES

SEARCH_MAX_LENGTH = TITLE_MAX_LENGTH
MAX_ID = MAX_MOVIE_ID

_FIELDS = {"title": TITLE_MAX_LENGTH, "description": DESCRIPTION_MAX_LENGTH}


class ValidationError(ValueError):
    """The request is malformed; ``str(error)`` is the message for the client."""


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be one JSON object."""
    if not body.strip():
        raise ValidationError("request body must be a JSON object, got an empty body")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"request body must be a JSON object, got {type(data).__name__}")
    return data


def _check_text(name: str, value: Any, max_length: int, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValidationError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {type(value).__name__}")
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


def _reject_unknown(data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        allowed = ", ".join(sorted(_FIELDS))
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}; allowed: {allowed}")


def validate_new_movie(data: dict[str, Any]) -> dict[str, Any]:
    """Fields for a new movie: ``title`` required, ``description`` optional (string or null)."""
    _reject_unknown(data)
    return {
        "title": _check_text("title", data.get("title"), TITLE_MAX_LENGTH, required=True),
        "description": _check_text(
            "description", data.get("description"), DESCRIPTION_MAX_LENGTH, required=False
        ),
    }


def validate_movie_update(data: dict[str, Any]) -> dict[str, Any]:
    """Fields to change on an existing movie: at least one of ``title`` and ``description``."""
    _reject_unknown(data)
    if not data:
        raise ValidationError("nothing to update: give title and/or description")
    fields: dict[str, Any] = {}
    if "title" in data:
        fields["title"] = _check_text("title", data["title"], TITLE_MAX_LENGTH, required=True)
    if "description" in data:
        fields["description"] = _check_text(
            "description", data["description"], DESCRIPTION_MAX_LENGTH, required=False
        )
    return fields


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
