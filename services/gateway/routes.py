"""The public API routes of the gateway, each with the permission it needs (``gateway.access``)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, jsonify, request

from common.log import principal_var
from common.orders import InvalidOrder, parse_order
from common.web import error_response
from contract.messaging import HTTP_PRINCIPAL_SUB, HTTP_READ_ALL, PRIORITY_QUEUES
from contract.permissions import READ_BILLING, READ_MOVIES, WRITE_BILLING, WRITE_MOVIES
from gateway.access import requirement_of, requires
from gateway.auth import AuthError
from gateway.order_ids import ORDER_ID
from gateway.parts import GATEWAY
from gateway.publisher import BrokerUnavailable
from gateway.ratelimit import headers as rate_limit_headers

log = logging.getLogger(__name__)
api = Blueprint("api", __name__, url_prefix="/api")

PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@api.before_request
def authenticate():
    """Every /api request needs a verified caller holding the permission its route declares."""
    # Only requests that matched a route of this blueprint get here (unknown paths and methods are 404/405).
    requirement = requirement_of(current_app.view_functions.get(request.endpoint or ""))
    needed = requirement.permission(request.method) if requirement else None
    gateway = GATEWAY.current()
    try:
        principal = gateway.authenticator.authenticate(request, needed)
    except AuthError as exc:
        if exc.status == 503:
            log.error("cannot verify tokens", extra={"reason": exc.message})
        response, status = error_response(exc.status, exc.message)
        challenge = exc.www_authenticate()
        if challenge:
            response.headers["WWW-Authenticate"] = challenge
        return response, status
    g.principal = principal
    if principal is not None:
        principal_var.set(principal.log_name())
    # Throttling off (the default): no limiter, nothing more to do.
    return None if gateway.rate_limiter is None else throttle(gateway.rate_limiter, principal)


def throttle(limiter, principal):
    """Take a token from the caller's read or write budget; a 429 when there is none (None: go on)."""
    # Without authentication (AUTH_REQUIRED=false, local experiments) the caller is its address.
    subject = principal.subject if principal is not None else f"address:{request.remote_addr}"
    decision = limiter.check(request.method, subject)
    if decision is None:
        return None
    g.rate_limit_headers = rate_limit_headers(decision)
    if decision.allowed:
        return None
    response, status = error_response(
        429, "too many requests: slow down and retry after the Retry-After seconds",
        retry_after_seconds=int(g.rate_limit_headers["Retry-After"]),
    )
    return response, status


@api.after_request
def add_rate_limit_headers(response):
    """Every answer to a throttled caller says how much of the budget is left (429s say it too)."""
    extra = g.get("rate_limit_headers")
    if extra:
        response.headers.update(extra)
    return response


@api.route("/movies", defaults={"subpath": ""}, methods=PROXIED_METHODS)
@api.route("/movies/<path:subpath>", methods=PROXIED_METHODS)
@requires(read=READ_MOVIES, write=WRITE_MOVIES)
def movies(subpath: str):
    """Everything under /api/movies goes to inventory unchanged; inventory's answer comes back unchanged."""
    # The request object itself, not Flask's proxy: forward reads a dozen of its attributes.
    return GATEWAY.current().proxy.forward(request._get_current_object(), g.request_id)


@api.post("/billing")
@requires(WRITE_BILLING)
def post_order():
    """Validate an order and publish it to its priority's queue; 200 only once the broker has confirmed it."""
    body = request.get_data()
    try:
        order = parse_order(body)
    except InvalidOrder as exc:
        return error_response(400, str(exc))
    parts = GATEWAY.current()
    principal = g.get("principal")
    # The order id is the message id, signed for its owner: the handle the caller follows the order with.
    order_id = parts.order_ids.issue(principal.subject if principal else "")
    try:
        message_id = parts.publisher.publish(
            body,
            g.request_id,
            principal.message_headers() if principal else None,
            message_id=order_id,
            queue=PRIORITY_QUEUES[order.priority],
        )
    except BrokerUnavailable as exc:
        log.error("order not accepted: broker unavailable", extra={"reason": str(exc)})
        response, status = error_response(503, "billing is temporarily unavailable, the order was not accepted")
        response.headers["Retry-After"] = "5"
        return response, status
    log.info("order published", extra={"message_id": message_id, "priority": order.priority})
    order_url = f"{api.url_prefix}/orders/{message_id}"
    response = jsonify(message="Message posted", message_id=message_id, request_id=g.request_id, order_url=order_url)
    response.headers["Location"] = order_url
    return response


def _reader() -> tuple[str, bool]:
    """The caller's ``sub`` ("" with auth off) and whether they may read every order (``billing.read``)."""
    principal = g.get("principal")
    if principal is None:
        return "", False
    return principal.subject, READ_BILLING in principal.permissions


def _to_billing(path: str, sub: str, read_all: bool):
    headers = {HTTP_PRINCIPAL_SUB: sub, HTTP_READ_ALL: "true" if read_all else "false"}
    return GATEWAY.current().billing.forward(request._get_current_object(), g.request_id, path, headers)


@api.get("/orders/<order_id>")
@requires(WRITE_BILLING)
def order_status(order_id: str):
    """The status of one order (asynchronous request-reply): billing answers queued/stored/rejected.

    The id must be one the gateway issued to this caller (to anyone, with ``billing.read``); any other
    well-formed id is 404, the same answer as for someone else's order, so neither can be told apart.
    """
    return _order_to_billing(order_id, "")


@api.get("/orders/<order_id>/invoice")
@requires(WRITE_BILLING)
def order_invoice(order_id: str):
    """The invoice of a confirmed purchase: billing answers 302 to a short-lived presigned S3 GET (passed through
    with its ``Location``), or 404 until the invoice exists. The id is checked exactly as for the order status."""
    return _order_to_billing(order_id, "/invoice")


def _order_to_billing(order_id: str, suffix: str):
    """Forward ``/orders/<id><suffix>`` to billing once the id is well-formed and issued to this caller."""
    if not ORDER_ID.fullmatch(order_id):
        return error_response(400, "an order id is 64 lowercase hex digits")
    sub, read_all = _reader()
    if not GATEWAY.current().order_ids.verify(order_id, sub, any_owner=read_all):
        return error_response(404, "no such order")
    return _to_billing(f"/orders/{order_id}{suffix}", sub, read_all)


@api.get("/orders")
@requires(WRITE_BILLING)
def list_orders():
    """The caller's stored orders, newest first (everyone's with ``billing.read``); ``limit`` and ``cursor``."""
    sub, read_all = _reader()
    return _to_billing("/orders", sub, read_all)
