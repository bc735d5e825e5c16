"""The OpenAPI 3.1 document of the public API, built from the routes' permission declarations.

Each path item names the view that serves it; the permission of every operation is read from that view's
``@requires`` mark (``gateway.access``), the same mark the authenticator enforces. Schemas and the security
scheme are in :mod:`gateway.openapi_schemas`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contract import invoices, limits, posters
from contract.messaging import HTTP_REQUEST_ID
from gateway import routes
from gateway.access import requirement_of
from gateway.openapi_schemas import ERROR, THROTTLED, components, json_content, ref

_DELETED = json_content(ref("Deleted"), "Deleted")


def _movie_id_param() -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "Movie id. A non-integer or unknown id answers 404.",
        "schema": {"type": "integer", "minimum": 1, "maximum": limits.MAX_MOVIE_ID},
    }


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


def _served_by(view: Callable[..., object], item: dict[str, Any]) -> dict[str, Any]:
    """Declare, on every operation of ``item``, the bearer scheme with the permission ``view`` requires for
    that method, and its 401/403 answers (and 429: throttling applies to every authenticated call)."""
    requirement = requirement_of(view)
    if requirement is None:
        raise ValueError(f"{view.__name__} declares no permission (gateway.access.requires)")
    for method, operation in item.items():
        if method == "parameters":
            continue
        permission = requirement.permission(method)
        operation["security"] = [{"cognito": [permission]}]
        operation["x-required-permission"] = permission
        operation["description"] = (operation.get("description", "") + f" Needs the `{permission}` permission.").strip()
        operation["responses"].update({"401": ERROR, "403": ERROR, "429": THROTTLED})
    return item


def _paths() -> dict[str, Any]:
    movie = ref("Movie")
    title_search = {
        "name": "title",
        "in": "query",
        "required": False,
        "description": "Only movies whose title contains this text, case-insensitively. "
        "Matched literally: `%`, `_` and `\\` are ordinary characters.",
        "schema": {"type": "string", "maxLength": limits.TITLE_MAX_LENGTH},
    }
    return {
        "/api/movies": _served_by(routes.movies, {
            "get": {
                "summary": "List movies, optionally filtered by title",
                "operationId": "listMovies",
                "parameters": [title_search],
                "responses": {
                    "200": json_content({"type": "array", "items": movie}, "Movies in id order"),
                    "400": ERROR,
                },
            },
            "post": {
                "summary": "Create a movie",
                "operationId": "createMovie",
                "requestBody": _body("NewMovie"),
                "responses": {"201": json_content(movie, "The created movie with its id"), "400": ERROR},
            },
            "delete": {
                "summary": "Delete all movies",
                "operationId": "deleteAllMovies",
                "responses": {"200": _DELETED},
            },
        }),
        "/api/movies/{id}": _served_by(routes.movies, {
            "parameters": [_movie_id_param()],
            "get": {
                "summary": "Get one movie",
                "operationId": "getMovie",
                "responses": {"200": json_content(movie, "The movie"), "404": ERROR},
            },
            "put": {
                "summary": "Update the given fields of a movie",
                "operationId": "updateMovie",
                "requestBody": _body("MovieUpdate"),
                "responses": {"200": json_content(movie, "The updated movie"), "400": ERROR, "404": ERROR},
            },
            "delete": {
                "summary": "Delete one movie",
                "operationId": "deleteMovie",
                "responses": {"200": _DELETED, "404": ERROR},
            },
        }),
        "/api/movies/{id}/poster": _served_by(routes.movies, {
            "parameters": [_movie_id_param()],
            "post": {
                "summary": "Get a presigned S3 POST (valet key) to upload a new poster",
                "description": "Send a multipart/form-data POST to `url` with every entry of `fields`, then the "
                f"file as the last field, `{posters.FILE_FIELD}`; S3 answers 204 and refuses another key or "
                f"content type, an empty file, one over {posters.MAX_UPLOAD_BYTES} bytes, or a use after "
                f"{posters.UPLOAD_EXPIRES_SECONDS} s. The movie's `poster_status` becomes `pending`, then "
                "`published` (with `poster`) or `rejected` (with `reason`) once the pipeline has run; the newest "
                "upload requested wins. 503 when posters are not enabled.",
                "operationId": "requestPosterUpload",
                "requestBody": _body("PosterUploadRequest"),
                "responses": {
                    "201": json_content(ref("PosterUpload"), "The presigned POST"),
                    "400": json_content(ref("PosterTypeError"), "Missing or unsupported content type"),
                    "404": ERROR,
                    "503": ERROR,
                },
            },
        }),
        "/api/billing": _served_by(routes.post_order, {
            "post": {
                "summary": "Queue an order for billing",
                "description": "Answers 200 only after the broker confirmed the persistent message; "
                "503 when the broker cannot take it (the order was not accepted, retry later).",
                "operationId": "postOrder",
                "requestBody": _body("Order"),
                "responses": {
                    "200": {
                        **json_content(ref("OrderAccepted"), "Order queued"),
                        "headers": {"Location": {"schema": {"type": "string"}, "description": "The order's URL"}},
                    },
                    "400": ERROR,
                    "503": ERROR,
                },
            },
        }),
        "/api/orders/{id}": _served_by(routes.order_status, {
            "parameters": [_order_id_param()],
            "get": {
                "summary": "Follow an order (asynchronous request-reply)",
                "description": "Poll until the status is no longer `queued`. Callers with `billing.read` read "
                "every order; others only their own: someone else's order and an id never issued are both 404.",
                "operationId": "getOrderStatus",
                "responses": {
                    "200": json_content(ref("OrderStatus"), "Stored or rejected"),
                    "202": {
                        **json_content(ref("OrderStatus"), "Queued: the broker still holds it"),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
                    },
                    "400": ERROR,
                    "404": ERROR,
                    "502": ERROR,
                    "504": ERROR,
                },
            },
        }),
        "/api/orders/{id}/invoice": _served_by(routes.order_invoice, {
            "parameters": [_order_id_param()],
            "get": {
                "summary": "Download the invoice of a confirmed purchase",
                "description": "302 to a presigned S3 GET of the invoice PDF, valid "
                f"{invoices.DOWNLOAD_EXPIRES_SECONDS} s (follow `Location`; ask again for a fresh one). 404 until "
                "the invoice is ready (the order's `invoice_url` appears then), for a classic order, for someone "
                "else's order and when invoices are not configured. A caller that accepts `application/json` "
                "rather than a PDF (a browser's fetch cannot follow a redirect to another origin) gets 200 with "
                "the URL instead.",
                "operationId": "getOrderInvoice",
                "responses": {
                    "302": {
                        "description": "Redirect to the invoice",
                        "headers": {
                            "Location": {"schema": {"type": "string"}, "description": "Presigned S3 GET URL"}
                        },
                    },
                    "200": {
                        "description": "The presigned URL, for a caller that asked for JSON",
                        "content": {"application/json": {"schema": {
                            "type": "object", "required": ["url", "expires_in"],
                            "properties": {"url": {"type": "string"}, "expires_in": {"type": "integer"}},
                        }}},
                    },
                    "400": ERROR,
                    "404": ERROR,
                    "502": ERROR,
                    "504": ERROR,
                },
            },
        }),
        "/api/orders": _served_by(routes.list_orders, {
            "get": {
                "summary": "List your stored orders, newest first",
                "description": "Everyone's orders with `billing.read`. Page with `limit` and `next_cursor`.",
                "operationId": "listOrders",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": limits.ORDERS_PAGE_MAX,
                            "default": limits.ORDERS_PAGE_DEFAULT,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "The `next_cursor` of the previous page (opaque).",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": json_content(ref("OrderPage"), "One page of orders"),
                    "400": ERROR,
                    "502": ERROR,
                    "504": ERROR,
                },
            },
        }),
    }


def _order_id_param() -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The order id from `POST /api/billing` (`message_id`). Malformed: 400.",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    }


def build_spec() -> dict[str, Any]:
    """Return the whole document (paths, schemas, error format, security)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Movies and billing API",
            "version": "1.0.0",
            "description": (
                "Public API of the gateway. `/api/movies*` is served by the inventory service, "
                "`POST /api/billing` queues an order for the billing service, `/api/orders*` follows it. "
                "Every response carries an "
                f"`{HTTP_REQUEST_ID}` header (the caller's, if well-formed, or a new one); errors are JSON objects "
                "with an `error` message."
            ),
        },
        "paths": _paths(),
        "components": components(),
    }
