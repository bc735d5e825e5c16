"""The OpenAPI 3.1 document of the public API, built from the same limits the services enforce."""

from __future__ import annotations

from typing import Any

from common import contract, orders
from gateway.auth import required_permission

_ERROR = {"$ref": "#/components/responses/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _movie_id_param() -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "Movie id. A non-integer or unknown id answers 404.",
        "schema": {"type": "integer", "minimum": 1, "maximum": contract.MAX_MOVIE_ID},
    }


def _secure(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare the bearer scheme on every operation, with the permission it needs and its 401/403 answers."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            permission = required_permission(method.upper(), path.replace("{id}", "1"))
            operation["security"] = [{"cognito": [permission]}]
            operation["x-required-permission"] = permission
            operation["description"] = (
                operation.get("description", "") + f" Needs the `{permission}` permission."
            ).strip()
            operation["responses"].update({"401": _ERROR, "403": _ERROR})
    return spec


def build_spec() -> dict[str, Any]:
    """Return the whole document (paths, schemas, error format, security)."""
    movie_ref = {"$ref": "#/components/schemas/Movie"}
    return _secure({
        "openapi": "3.1.0",
        "info": {
            "title": "Movies and billing API",
            "version": "1.0.0",
            "description": (
                "Public API of the gateway. `/api/movies*` is served by the inventory service, "
                "`POST /api/billing` queues an order for the billing service. Every response carries an "
                "`X-Request-ID` header (the caller's, if well-formed, or a new one); errors are JSON objects "
                "with an `error` message."
            ),
        },
        "paths": {
            "/api/movies": {
                "get": {
                    "summary": "List movies, optionally filtered by title",
                    "operationId": "listMovies",
                    "parameters": [
                        {
                            "name": "title",
                            "in": "query",
                            "required": False,
                            "description": "Only movies whose title contains this text, case-insensitively. "
                            "Matched literally: `%`, `_` and `\\` are ordinary characters.",
                            "schema": {"type": "string", "maxLength": contract.TITLE_MAX_LENGTH},
                        }
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": movie_ref}, "Movies in id order"),
                        "400": _ERROR,
                    },
                },
                "post": {
                    "summary": "Create a movie",
                    "operationId": "createMovie",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewMovie"}}},
                    },
                    "responses": {"201": _json(movie_ref, "The created movie with its id"), "400": _ERROR},
                },
                "delete": {
                    "summary": "Delete all movies",
                    "operationId": "deleteAllMovies",
                    "responses": {"200": _json({"$ref": "#/components/schemas/Deleted"}, "Deleted")},
                },
            },
            "/api/movies/{id}": {
                "parameters": [_movie_id_param()],
                "get": {
                    "summary": "Get one movie",
                    "operationId": "getMovie",
                    "responses": {"200": _json(movie_ref, "The movie"), "404": _ERROR},
                },
                "put": {
                    "summary": "Update the given fields of a movie",
                    "operationId": "updateMovie",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/MovieUpdate"}}
                        },
                    },
                    "responses": {"200": _json(movie_ref, "The updated movie"), "400": _ERROR, "404": _ERROR},
                },
                "delete": {
                    "summary": "Delete one movie",
                    "operationId": "deleteMovie",
                    "responses": {"200": _json({"$ref": "#/components/schemas/Deleted"}, "Deleted"), "404": _ERROR},
                },
            },
            "/api/billing": {
                "post": {
                    "summary": "Queue an order for billing",
                    "description": "Answers 200 only after the broker confirmed the persistent message; "
                    "503 when the broker cannot take it (the order was not accepted, retry later).",
                    "operationId": "postOrder",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}},
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/OrderAccepted"}, "Order queued"),
                        "400": _ERROR,
                        "503": _ERROR,
                    },
                },
            },
        },
        "components": {
            "schemas": {
                "Movie": {
                    "type": "object",
                    "required": ["id", "title", "description"],
                    "properties": {
                        "id": {"type": "integer"},
                        "title": {"type": "string"},
                        "description": {"type": ["string", "null"]},
                    },
                },
                "NewMovie": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["title"],
                    "properties": {
                        "title": {"type": "string", "minLength": 1, "maxLength": contract.TITLE_MAX_LENGTH},
                        "description": {"type": ["string", "null"], "maxLength": contract.DESCRIPTION_MAX_LENGTH},
                    },
                },
                "MovieUpdate": {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {
                        "title": {"type": "string", "minLength": 1, "maxLength": contract.TITLE_MAX_LENGTH},
                        "description": {"type": ["string", "null"], "maxLength": contract.DESCRIPTION_MAX_LENGTH},
                    },
                },
                "Deleted": {
                    "type": "object",
                    "properties": {"message": {"type": "string"}, "id": {"type": "integer"},
                                   "deleted": {"type": "integer"}},
                },
                "Order": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": list(orders.FIELDS),
                    "properties": {
                        "user_id": {
                            "oneOf": [
                                {"type": "string", "minLength": 1, "maxLength": orders.USER_ID_MAX_LENGTH},
                                {"type": "integer", "minimum": 0},
                            ]
                        },
                        "number_of_items": {
                            "description": "Whole number, as a JSON number or a string of digits.",
                            "oneOf": [
                                {"type": "integer", "minimum": 1, "maximum": orders.MAX_ITEMS},
                                {"type": "string", "pattern": "^[0-9]+$"},
                            ],
                        },
                        "total_amount": {
                            "description": "Non-negative amount with at most two decimals, number or string.",
                            "oneOf": [
                                {"type": "number", "minimum": 0, "maximum": float(orders.MAX_TOTAL_AMOUNT)},
                                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,2})?$"},
                            ],
                        },
                    },
                    "example": {"user_id": "3", "number_of_items": "5", "total_amount": "180"},
                },
                "OrderAccepted": {
                    "type": "object",
                    "required": ["message", "message_id"],
                    "properties": {
                        "message": {"type": "string", "const": "Message posted"},
                        "message_id": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string", "description": "What is wrong, for a human"}},
                },
            },
            "responses": {
                "Error": _json({"$ref": "#/components/schemas/Error"}, "Error, with a JSON body saying why"),
            },
            "securitySchemes": {
                "cognito": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A Cognito access token. Machine clients (client-credentials flow) get permissions as "
                        "OAuth scopes `<resource server>/movies.read`, `movies.write`, `billing.write`; users get "
                        "them through Cognito groups mapped by the gateway's AUTH_GROUP_PERMISSIONS. Missing or "
                        "invalid token: 401 with `WWW-Authenticate: Bearer`; missing permission: 403."
                    ),
                }
            },
        },
    })
