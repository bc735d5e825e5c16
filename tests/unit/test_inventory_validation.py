"""Validation of movie requests in inventory."""

import pytest

from contract.limits import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH
from inventory.validation import (
    ValidationError,
    parse_json_object,
    validate_movie_update,
    validate_new_movie,
    validate_search,
)


def test_new_movie_keeps_any_unicode():
    """Titles and descriptions may hold any Unicode, stored exactly as sent."""
    movie = validate_new_movie({"title": "Amélie 🎬 東京", "description": "Ünïcode"})
    assert movie == {"title": "Amélie 🎬 東京", "description": "Ünïcode"}


def test_description_is_optional():
    """A movie without description gets None."""
    assert validate_new_movie({"title": "Solaris"}) == {"title": "Solaris", "description": None}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({}, "title is required"),
        ({"title": ""}, "must not be empty"),
        ({"title": "   "}, "must not be empty"),
        ({"title": 5}, "title must be a string"),
        ({"title": ["a"]}, "title must be a string"),
        ({"title": "x", "description": 3}, "description must be a string"),
        ({"title": "x" * (TITLE_MAX_LENGTH + 1)}, f"at most {TITLE_MAX_LENGTH}"),
        ({"title": "x", "description": "d" * (DESCRIPTION_MAX_LENGTH + 1)}, f"at most {DESCRIPTION_MAX_LENGTH}"),
        ({"title": "a\x00b"}, "NUL"),
        ({"title": "\ud800"}, "surrogate"),
        ({"title": "x", "year": 1999}, "unknown field(s): year"),
    ],
)
def test_bad_new_movies_are_rejected(data, reason):
    """Every rule a client can break gives a message that says which."""
    with pytest.raises(ValidationError) as excinfo:
        validate_new_movie(data)
    assert reason in str(excinfo.value)


def test_update_needs_at_least_one_field():
    """An empty update is a client error, not a silent no-op."""
    with pytest.raises(ValidationError, match="nothing to update"):
        validate_movie_update({})


def test_update_may_clear_the_description():
    """description: null in an update clears it; title is left alone."""
    assert validate_movie_update({"description": None}) == {"description": None}


def test_update_cannot_clear_the_title():
    """title: null would break the NOT NULL rule: it is refused with a message."""
    with pytest.raises(ValidationError, match="title is required"):
        validate_movie_update({"title": None})


@pytest.mark.parametrize("body", [b"", b"   ", b"nope", b"[1]", b'"text"', b"\xff"])
def test_body_must_be_one_json_object(body):
    """Anything but a JSON object is refused before validation."""
    with pytest.raises(ValidationError):
        parse_json_object(body)


def test_search_text_is_returned_unchanged():
    """Wildcard characters are not special at this layer (the SQL escapes them)."""
    assert validate_search("100%_\\") == "100%_\\"
    assert validate_search("") is None
    with pytest.raises(ValidationError):
        validate_search("x" * (TITLE_MAX_LENGTH + 1))
