"""Invoices: rendered when an order is confirmed, stored in S3, announced by claim check.

The invoicer (``functions/invoices/``: a Lambda consuming the invoicer's queue on AWS, the same handler under
the local runner) takes the body of an ``order.confirmed`` event, renders the invoice as a PDF, stores it at
``invoice_key(order_id)`` in the private, encrypted invoices bucket, and publishes ``invoice.ready`` to the
saga's exchange: the object's key, sha256 and size, the claim check, never the document
(docs/patterns/claim-check.md).

The events themselves (``order.confirmed``, ``invoice.ready``: names, envelope, field kinds) are the saga's,
``contract.saga``; this module holds only what is specific to invoices. ``order.confirmed`` carries
``data: {"movie_id", "title"?, "quantity", "unit_price", "total_amount", "principal": {"sub", "name"}}``;
``invoice.ready`` ``data: {"key", "sha256", "size"}``.
"""

from __future__ import annotations

import re

#: Prefix of invoices in the invoices bucket; one object per order, ``invoices/<order id>.pdf``.
KEY_PREFIX = "invoices/"
CONTENT_TYPE = "application/pdf"
#: Who sells, printed on every invoice.
SELLER_NAME = "Movie Shop"
#: Currency of every amount (orders carry bare amounts).
CURRENCY = "EUR"
#: Settings the invoicer reads (the Lambda's environment on AWS, the local runner's locally). The broker login
#: comes from the secret ``RABBITMQ_SECRET_ID`` (Amazon MQ's, JSON username/password) or, locally without one,
#: from ``RABBITMQ_USER`` / ``RABBITMQ_PASSWORD``; the names are those the services use (contract.environment).
BUCKET_SETTING = "INVOICES_BUCKET"
BROKER_URL_SETTING = "RABBITMQ_URL"
BROKER_SECRET_SETTING = "RABBITMQ_SECRET_ID"  # noqa: S105 - a setting's name
BROKER_USER_SETTING = "RABBITMQ_USER"
BROKER_PASSWORD_SETTING = "RABBITMQ_PASSWORD"  # noqa: S105 - the name of a setting, not a password

#: Lifetime of the presigned GET of ``GET /api/orders/<id>/invoice`` (the valet key to the document).
DOWNLOAD_EXPIRES_SECONDS = 300

#: An order id as it may appear in a key: letters, digits, '-' and '_' (the gateway's are 64 hex digits).
_ORDER_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def valid_order_id(order_id: object) -> bool:
    """True when ``order_id`` may become part of a key."""
    return isinstance(order_id, str) and bool(_ORDER_ID.fullmatch(order_id))


def invoice_key(order_id: str) -> str:
    """Key of an order's invoice; ValueError for an order id that cannot be part of a key."""
    if not valid_order_id(order_id):
        raise ValueError(f"not an order id: {order_id!r}")
    return f"{KEY_PREFIX}{order_id}.pdf"
