"""Routes declare the permission they need (gateway.access); the authenticator and the OpenAPI document read it."""

from __future__ import annotations

import pytest
from flask import Flask

from contract.permissions import READ_MOVIES, WRITE_BILLING, WRITE_MOVIES
from gateway import ratelimit, routes
from gateway.access import Requirement, requirement_of, requires
from gateway.openapi import build_spec
from gateway.openapi_schemas import THROTTLED
from gateway.token_bucket import Decision


@pytest.mark.parametrize(
    ("method", "permission"),
    [("GET", READ_MOVIES), ("HEAD", READ_MOVIES), ("OPTIONS", READ_MOVIES), ("get", READ_MOVIES),
     ("POST", WRITE_MOVIES), ("PUT", WRITE_MOVIES), ("PATCH", WRITE_MOVIES), ("DELETE", WRITE_MOVIES)],
)
def test_reads_and_writes_of_movies_need_their_own_permission(method, permission):
    """The proxied /api/movies routes: safe methods need movies.read, every other method movies.write."""
    assert requirement_of(routes.movies).permission(method) == permission


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_one_permission_covers_every_method(method):
    """requires(p) asks for p whatever the method."""
    assert requirement_of(routes.post_order).permission(method) == WRITE_BILLING


def test_every_api_route_declares_its_permission():
    """A route without a declaration would be open to any authenticated caller: none may exist."""
    app = Flask(__name__)
    app.register_blueprint(routes.api)
    endpoints = [name for name in app.view_functions if name.startswith("api.")]
    assert endpoints
    assert [name for name in endpoints if requirement_of(app.view_functions[name]) is None] == []


def test_requires_rejects_an_incomplete_declaration():
    """Either one permission or both read= and write=; anything else is a programming error, found at import."""
    for arguments in ({}, {"read": READ_MOVIES}, {"write": WRITE_MOVIES}):
        with pytest.raises(TypeError):
            requires(**arguments)
    with pytest.raises(TypeError):
        requires(WRITE_BILLING, read=READ_MOVIES)
    assert requirement_of(requires(WRITE_BILLING)(lambda: None)) == Requirement(WRITE_BILLING, WRITE_BILLING)


def test_openapi_operations_carry_the_routes_permissions():
    """The document states, per operation, exactly the permission the authenticator enforces."""
    found = {
        (method.upper(), path): (operation["x-required-permission"], operation["security"])
        for path, item in build_spec()["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    expected = {
        ("GET", "/api/movies"): READ_MOVIES,
        ("POST", "/api/movies"): WRITE_MOVIES,
        ("DELETE", "/api/movies"): WRITE_MOVIES,
        ("GET", "/api/movies/{id}"): READ_MOVIES,
        ("PUT", "/api/movies/{id}"): WRITE_MOVIES,
        ("DELETE", "/api/movies/{id}"): WRITE_MOVIES,
        ("POST", "/api/movies/{id}/poster"): WRITE_MOVIES,
        ("POST", "/api/billing"): WRITE_BILLING,
        ("GET", "/api/orders/{id}"): WRITE_BILLING,
        ("GET", "/api/orders/{id}/invoice"): WRITE_BILLING,
        ("GET", "/api/orders"): WRITE_BILLING,
    }
    assert found == {key: (permission, [{"cognito": [permission]}]) for key, permission in expected.items()}


def test_openapi_documents_the_throttled_answer_with_the_headers_the_gateway_sends():
    """Every authenticated operation documents 429, and the documented headers are exactly those the gateway
    sets on a refused request (gateway.ratelimit.headers)."""
    spec = build_spec()
    operations = [
        operation
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method != "parameters" and "security" in operation
    ]
    assert operations and all(operation["responses"].get("429") == THROTTLED for operation in operations)
    refused = Decision(allowed=False, limit=5, remaining=0, retry_after_seconds=2, reset_seconds=3)
    documented = spec["components"]["responses"]["Throttled"]["headers"]
    assert set(documented) == set(ratelimit.headers(refused))
