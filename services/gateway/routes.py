"""The public API routes of the gateway."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, jsonify, request

from common.log import principal_var
from common.orders import InvalidOrder, parse_order
from common.web import error_response
from gateway.auth import AuthError
from gateway.publisher import BrokerUnavailable

log = logging.getLogger(__name__)
api = Blueprint("api", __name__, url_prefix="/api")

_PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@api.before_request
def authenticate():
    """Every /api request needs a verified caller with the route's permission (see gateway.auth)."""
    try:
        principal = current_app.extensions["authenticator"].authenticate(request)
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
    return None


@api.route("/movies", defaults={"subpath": ""}, methods=_PROXIED_METHODS)
@api.route("/movies/<path:subpath>", methods=_PROXIED_METHODS)
def movies(subpath: str):
    """Everything under /api/movies goes to inventory unchanged; inventory's answer comes back unchanged."""
    return current_app.extensions["inventory_proxy"].forward(request, g.request_id)


@api.post("/billing")
def post_order():
    """Validate an order and publish it; 200 only once the broker has confirmed it."""
    body = request.get_data()
    try:
        parse_order(body)
    except InvalidOrder as exc:
        return error_response(400, str(exc))
    try:
        principal = g.get("principal")
        message_id = current_app.extensions["billing_publisher"].publish(
            body, g.request_id, principal.message_headers() if principal else None
        )
    except BrokerUnavailable as exc:
        log.error("order not accepted: broker unavailable", extra={"reason": str(exc)})
        response, status = error_response(503, "billing is temporarily unavailable, the order was not accepted")
        response.headers["Retry-After"] = "5"
        return response, status
    log.info("order published", extra={"message_id": message_id})
    return jsonify(message="Message posted", message_id=message_id, request_id=g.request_id)
