"""The ``/api/movies`` endpoints."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from common.web import error_response
from contract.posters import CONTENT_TYPES
from inventory import posters
from inventory.db import get_store
from inventory.validation import (
    MAX_ID,
    ValidationError,
    parse_json_object,
    validate_movie_update,
    validate_new_movie,
    validate_poster_request,
    validate_search,
)

log = logging.getLogger(__name__)
movies = Blueprint("movies", __name__, url_prefix="/api/movies")


@movies.errorhandler(ValidationError)
def _invalid(exc: ValidationError):
    return error_response(400, str(exc))


def _not_found(movie_id: int):
    return error_response(404, f"movie {movie_id} not found")


@movies.get("")
def list_movies():
    """All movies, or those whose title contains ``?title=`` (case-insensitive, matched literally)."""
    title = validate_search(request.args.get("title"))
    return jsonify(get_store().list(title_contains=title))


@movies.post("")
def create_movie():
    """Create a movie; 201 with the stored movie and its id."""
    fields = validate_new_movie(parse_json_object(request.get_data()))
    movie = get_store().create(
        fields["title"], fields["description"], stock=fields.get("stock"), price=fields.get("price")
    )
    return jsonify(movie), 201


@movies.delete("")
def delete_all_movies():
    """Delete every movie."""
    deleted = get_store().delete_all()
    return jsonify(message="All movies deleted", deleted=deleted)


@movies.get("/<int:movie_id>")
def get_movie(movie_id: int):
    """One movie by id."""
    movie = get_store().get(movie_id) if movie_id <= MAX_ID else None
    return jsonify(movie) if movie else _not_found(movie_id)


@movies.put("/<int:movie_id>")
def update_movie(movie_id: int):
    """Change the given fields of one movie."""
    fields = validate_movie_update(parse_json_object(request.get_data()))
    movie = get_store().update(movie_id, fields) if movie_id <= MAX_ID else None
    return jsonify(movie) if movie else _not_found(movie_id)


@movies.delete("/<int:movie_id>")
def delete_movie(movie_id: int):
    """Delete one movie."""
    if movie_id <= MAX_ID and get_store().delete(movie_id):
        return jsonify(message=f"movie {movie_id} deleted", id=movie_id)
    return _not_found(movie_id)


@movies.post("/<int:movie_id>/poster")
def request_poster_upload(movie_id: int):
    """A presigned S3 POST (the valet key) for a new poster of one movie; 201. The movie's ``poster_status``
    becomes pending for the new upload until the pipeline reports the result."""
    try:
        content_type = validate_poster_request(parse_json_object(request.get_data()))
    except ValidationError as exc:
        return error_response(400, str(exc), allowed_content_types=list(CONTENT_TYPES))
    bucket = current_app.config[posters.UPLOAD_BUCKET_CONFIG]
    if not bucket:
        return error_response(503, "poster uploads are not enabled on this system")
    if movie_id > MAX_ID:
        return _not_found(movie_id)
    upload_id = posters.new_upload_id()
    try:
        # Signed first (locally, no call to S3): a movie is marked pending only for an upload it can really get.
        answer = posters.presigned_upload(bucket, movie_id, upload_id, content_type)
    except Exception:  # e.g. no AWS credentials: posters are unusable, the movies API is not
        log.exception("cannot sign a poster upload")
        return error_response(503, "poster uploads are temporarily unavailable")
    if not get_store().request_poster(movie_id, upload_id):
        return _not_found(movie_id)
    return jsonify(answer), 201
