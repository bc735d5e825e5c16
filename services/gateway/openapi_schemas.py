"""The reusable parts of the OpenAPI document: schemas, the error response and the security scheme.

Limits come from where they are enforced (``contract.limits``, ``common.orders``), so the document cannot
promise what the services refuse.
"""

from __future__ import annotations

from typing import Any

from common import orders
from contract import limits, posters, saga
from contract.permissions import PERMISSIONS

ERROR = {"$ref": "#/components/responses/Error"}
#: Over the caller's read or write budget (gateway.ratelimit), on every authenticated operation.
THROTTLED = {"$ref": "#/components/responses/Throttled"}
#: An order id (``gateway.order_ids``).
_ORDER_ID = "^[0-9a-f]{64}$"
#: A poster upload id: 13 digits of epoch milliseconds, 16 random hex digits (inventory.posters).
_UPLOAD_ID = "^[0-9]{13}[0-9a-f]{16}$"


#: ``price`` and ``stock`` as a request may give them (``inventory.validation``); null clears them.
_PRICE_IN = {
    "description": f"0 to {limits.MAX_PRICE} with at most two decimals, as a JSON number or a decimal string "
    "(the rules of an order's `total_amount`); null: no price.",
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": float(limits.MAX_PRICE)},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,2})?$"},
        {"type": "null"},
    ],
}
_STOCK_IN = {
    "type": ["integer", "null"],
    "minimum": 0,
    "maximum": limits.MAX_STOCK,
    "description": "Copies for sale, a whole JSON number (not a string); null: not for sale.",
}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response with a JSON body of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name: str) -> dict[str, str]:
    """A reference to the schema ``name`` of :func:`components`."""
    return {"$ref": f"#/components/schemas/{name}"}


def _scopes() -> str:
    """The permissions as the scopes a machine client asks for: `<resource server>/movies.read`, ..."""
    first, *others = PERMISSIONS
    return ", ".join([f"`<resource server>/{first}`", *(f"`{name}`" for name in others)])


def components() -> dict[str, Any]:
    """The ``components`` object: schemas, the shared error response, the bearer security scheme."""
    return {
        "schemas": {
            "Movie": {
                "type": "object",
                "required": ["id", "title", "description", "poster", "poster_status", "stock", "price"],
                "properties": {
                    "id": {"type": "integer"},
                    "title": {"type": "string"},
                    "description": {"type": ["string", "null"]},
                    "poster": {
                        "description": "The published poster's URLs on the web origin (null: none yet). Set by "
                        "the poster pipeline only.",
                        "oneOf": [{"type": "null"}, ref("Poster")],
                    },
                    "poster_status": {
                        "description": "State of the newest poster upload requested (null: none).",
                        "oneOf": [{"type": "null"}, ref("PosterStatus")],
                    },
                    "stock": {
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "description": "Copies in stock (never below 0); null: not for sale (also every movie "
                        "created before stock existed).",
                    },
                    "price": {
                        "type": ["string", "null"],
                        "pattern": "^[0-9]+\\.[0-9]{2}$",
                        "description": "Decimal with two places, as a string (like an order's `total_amount`); "
                        "null: no price.",
                        "example": "19.90",
                    },
                },
            },
            "Poster": {
                "type": "object",
                "required": list(posters.SIZES),
                "properties": {
                    name: {
                        "type": "string",
                        "description": f"WebP of at most {width} x {height} pixels",
                        "example": f"/{posters.PUBLISHED_PREFIX}1/1767225600000a1b2c3d4e5f60718/{name}.webp",
                    }
                    for name, (width, height) in posters.SIZES.items()
                },
            },
            "PosterStatus": {
                "type": "object",
                "required": ["upload_id", "state", "reason"],
                "properties": {
                    "upload_id": {"type": "string", "pattern": _UPLOAD_ID},
                    "state": {"type": "string", "enum": [posters.PENDING, posters.PUBLISHED, posters.REJECTED]},
                    "reason": {"type": ["string", "null"], "description": "Why the upload was rejected"},
                },
            },
            "PosterUploadRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["content_type"],
                "properties": {"content_type": {"type": "string", "enum": list(posters.CONTENT_TYPES)}},
                "example": {"content_type": "image/png"},
            },
            "PosterUpload": {
                "type": "object",
                "required": ["url", "fields", "upload_id", "key", "expires_in"],
                "properties": {
                    "url": {"type": "string", "description": "Where to POST the form (the uploads bucket)"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Form fields to send before the file (key, Content-Type, policy, "
                        "signature, ...)",
                    },
                    "upload_id": {"type": "string", "pattern": _UPLOAD_ID},
                    "key": {"type": "string", "description": "The object key chosen by the server"},
                    "expires_in": {"type": "integer", "const": posters.UPLOAD_EXPIRES_SECONDS},
                },
            },
            "PosterTypeError": {
                "type": "object",
                "required": ["error", "allowed_content_types"],
                "properties": {
                    "error": {"type": "string"},
                    "allowed_content_types": {"type": "array", "items": {"type": "string"}},
                },
            },
            "NewMovie": {
                "type": "object",
                "additionalProperties": False,
                "required": ["title"],
                "example": {"title": "Stalker", "description": "Tarkovsky, 1979", "stock": 3, "price": "19.90"},
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": limits.TITLE_MAX_LENGTH},
                    "description": {"type": ["string", "null"], "maxLength": limits.DESCRIPTION_MAX_LENGTH},
                    "stock": _STOCK_IN,
                    "price": _PRICE_IN,
                },
            },
            "MovieUpdate": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": limits.TITLE_MAX_LENGTH},
                    "description": {"type": ["string", "null"], "maxLength": limits.DESCRIPTION_MAX_LENGTH},
                    "stock": _STOCK_IN,
                    "price": _PRICE_IN,
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
                "required": [name for name in orders.FIELDS if name != "number_of_items"],
                "description": "A classic order needs `number_of_items`. A purchase names `movie_id` and "
                "`quantity` (both or neither) and may leave `number_of_items` out (given, it must equal "
                "`quantity`): billing stores it `pending` and asks inventory to reserve the stock (the saga).",
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
                    "movie_id": {
                        "description": "Purchase: the movie bought, as a JSON number or a string of digits.",
                        "oneOf": [
                            {"type": "integer", "minimum": 1, "maximum": limits.MAX_MOVIE_ID},
                            {"type": "string", "pattern": "^[0-9]+$"},
                        ],
                    },
                    "quantity": {
                        "description": "Purchase: how many copies, as a JSON number or a string of digits.",
                        "oneOf": [
                            {"type": "integer", "minimum": 1, "maximum": saga.MAX_QUANTITY},
                            {"type": "string", "pattern": "^[0-9]+$"},
                        ],
                    },
                    "priority": {
                        "description": "express orders travel on their own queue and are stored ahead of "
                        "standard ones; anything else is a 400.",
                        "type": "string",
                        "enum": list(orders.PRIORITIES),
                        "default": orders.OPTIONAL_FIELDS["priority"],
                    },
                },
                "examples": [
                    {"user_id": "3", "number_of_items": "5", "total_amount": "180"},
                    {"user_id": "3", "movie_id": 7, "quantity": 2, "total_amount": "25.00"},
                ],
            },
            "OrderAccepted": {
                "type": "object",
                "required": ["message", "message_id", "order_url"],
                "properties": {
                    "message": {"type": "string", "const": "Message posted"},
                    "message_id": {"type": "string", "description": "The order id", "pattern": _ORDER_ID},
                    "request_id": {"type": "string"},
                    "order_url": {"type": "string", "description": "Where to follow the order (also `Location`)"},
                },
            },
            "OrderStatus": {
                "type": "object",
                "required": ["status", "order_id", "order_url"],
                "description": "`queued`: the broker holds it (202, ask again after `Retry-After`); `stored`: "
                "billing stored it (the order's fields and `stored_at`); `rejected`: billing can never store "
                "it (`reason`, `kind`, `rejected_at`). A purchase reads `pending` (inventory has not answered "
                "yet), `confirmed` (with `unit_price`, then `invoice_url` once the invoice is ready) or "
                "`rejected` (`reason`: no stock, not for sale, price changed, timed out), with `movie_id` and "
                "`quantity`.",
                "properties": {
                    "status": {"type": "string", "enum": ["queued", "stored", "rejected", "pending", "confirmed"]},
                    "movie_id": {"type": "integer", "description": "Purchases only"},
                    "quantity": {"type": "integer", "description": "Purchases only"},
                    "unit_price": {
                        "type": ["string", "null"],
                        "description": "Purchases: the price inventory reserved at (null until known)",
                    },
                    "invoice_url": {
                        "type": "string",
                        "description": "Purchases: `/api/orders/{id}/invoice`, once the invoice is ready",
                    },
                    "updated_at": {"type": "string", "format": "date-time", "description": "Purchases only"},
                    "order_id": {"type": "string", "pattern": _ORDER_ID},
                    "order_url": {"type": "string"},
                    "user_id": {"type": "string"},
                    "number_of_items": {"type": "integer"},
                    "total_amount": {"type": "string", "description": "Decimal with two places"},
                    "request_id": {"type": ["string", "null"]},
                    "placed_by": {"type": ["string", "null"], "description": "User name or client:<id>"},
                    "stored_at": {"type": "string", "format": "date-time"},
                    "reason": {"type": "string"},
                    "kind": {"type": "string"},
                    "rejected_at": {"type": "string", "format": "date-time"},
                },
            },
            "OrderPage": {
                "type": "object",
                "required": ["orders", "next_cursor"],
                "properties": {
                    "orders": {"type": "array", "items": ref("OrderStatus"), "description": "Newest first"},
                    "next_cursor": {
                        "type": ["string", "null"],
                        "description": "Pass as `cursor` for the next page; null on the last page",
                    },
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string", "description": "What is wrong, for a human"}},
            },
        },
        "responses": {
            "Error": json_content(ref("Error"), "Error, with a JSON body saying why"),
            "Throttled": {
                **json_content(ref("Error"), "Over the caller's request budget (only when throttling is on)"),
                "headers": {
                    name: {"schema": {"type": "integer"}, "description": meaning}
                    for name, meaning in (
                        ("Retry-After", "Seconds until a request of this kind is accepted again"),
                        ("RateLimit-Limit", "Requests of this kind (read or write) the caller may burst"),
                        ("RateLimit-Remaining", "Requests left in the budget now"),
                        ("RateLimit-Reset", "Seconds until the budget is full again"),
                    )
                },
            },
        },
        "securitySchemes": {
            "cognito": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": (
                    "A Cognito access token. Machine clients (client-credentials flow) get permissions as "
                    f"OAuth scopes {_scopes()}; users get "
                    "them through Cognito groups mapped by the gateway's AUTH_GROUP_PERMISSIONS. Missing or "
                    "invalid token: 401 with `WWW-Authenticate: Bearer`; missing permission: 403."
                ),
            }
        },
    }
