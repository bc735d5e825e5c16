"""Billing's order-status endpoints, for the gateway only: ``GET /orders/<id>``, ``GET /orders`` and
``GET /orders/<id>/invoice`` (a purchase's invoice: 302 to a presigned S3 GET).

Each read asks only the shard of the principal named in ``X-Principal-Sub`` (``billing.shard_reads``); a
shard that is away answers 503 with Retry-After, as any unavailable dependency does.

Billing is not reachable from outside (on AWS only the gateway's security group may connect; locally it
listens on 127.0.0.1), so it trusts the principal headers the gateway sets after verifying the caller and the
order id; the gateway drops any copy a caller sends. A request without them is refused.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, request

from billing import invoice_links
from billing.order_status import ORDER_READER, InvalidCursor, Reader
from billing.shard_reads import ShardedReader
from common.web import error_response
from contract import invoices
from contract.limits import ORDER_RETRY_AFTER_SECONDS, ORDERS_PAGE_DEFAULT, ORDERS_PAGE_MAX
from contract.messaging import HTTP_PRINCIPAL_SUB, HTTP_READ_ALL

orders = Blueprint("orders", __name__, url_prefix="/orders")
_ORDER_ID_MAX_LENGTH = 255  # an AMQP message id (shortstr) is never longer


def _reader() -> Reader | None:
    sub = request.headers.get(HTTP_PRINCIPAL_SUB)
    if sub is None:
        return None
    return Reader(sub, request.headers.get(HTTP_READ_ALL, "").lower() == "true")


def _store() -> ShardedReader:
    return ORDER_READER.current()


def _no_principal():
    return error_response(400, f"the {HTTP_PRINCIPAL_SUB} header is required (set by the gateway)")


@orders.get("/<order_id>")
def order_status(order_id: str):
    """202 queued (with Retry-After), 200 stored, 200 rejected, or 404 when the reader may not see it."""
    reader = _reader()
    if reader is None:
        return _no_principal()
    if len(order_id) > _ORDER_ID_MAX_LENGTH:
        return error_response(400, "order id is too long")
    found = _store().status(order_id, reader)
    if found is None:
        return error_response(404, "no such order")
    if found["status"] == "queued":
        response = jsonify(found)
        response.headers["Retry-After"] = str(ORDER_RETRY_AFTER_SECONDS)
        return response, 202
    response = jsonify(found)
    if found["status"] == "pending":  # a purchase waiting for inventory: worth asking again soon
        response.headers["Retry-After"] = str(ORDER_RETRY_AFTER_SECONDS)
    return response


@orders.get("/<order_id>/invoice")
def order_invoice(order_id: str):
    """302 to a presigned GET of the purchase's invoice (a caller that accepts JSON rather than a PDF, like the
    web front end's fetch, which cannot follow a redirect to another origin without CORS, gets 200 ``{"url",
    "expires_in"}`` instead); 404 when invoices are not configured, when the reader may not see the order, or
    until its invoice is ready."""
    reader = _reader()
    if reader is None:
        return _no_principal()
    if len(order_id) > _ORDER_ID_MAX_LENGTH:
        return error_response(400, "order id is too long")
    bucket = invoice_links.bucket()
    if not bucket:
        return error_response(404, "invoices are not configured")
    visible, key = _store().invoice_key(order_id, reader)
    if not visible:
        return error_response(404, "no such order")
    if key is None:
        return error_response(404, "no invoice for this order yet (only a confirmed purchase gets one)")
    url = invoice_links.download_url(bucket, key, order_id)
    accepted = request.accept_mimetypes
    if accepted["application/json"] > accepted[invoices.CONTENT_TYPE]:
        response = jsonify(url=url, expires_in=invoices.DOWNLOAD_EXPIRES_SECONDS)
    else:
        response = redirect(url, 302)
    response.headers["Cache-Control"] = "no-store"  # the link expires: never cache it
    response.headers["Vary"] = "Accept"
    return response


@orders.get("")
def list_orders():
    """The reader's stored orders (everyone's with ``billing.read``), newest first, ``limit`` per page."""
    reader = _reader()
    if reader is None:
        return _no_principal()
    raw_limit = request.args.get("limit", str(ORDERS_PAGE_DEFAULT))
    if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= ORDERS_PAGE_MAX:
        return error_response(400, f"limit must be a whole number from 1 to {ORDERS_PAGE_MAX}")
    try:
        items, next_cursor = _store().page(reader, int(raw_limit), request.args.get("cursor"))
    except InvalidCursor as exc:
        return error_response(400, str(exc))
    return jsonify(orders=items, next_cursor=next_cursor)
