"""Authentication on the full local system: real tokens from the local Cognito emulator (moto)."""

from __future__ import annotations

import json
import secrets

import pytest
from e2e_support import new_marker, order

from contract.messaging import BILLING_QUEUE

pytestmark = pytest.mark.e2e


def test_unauthenticated_request_is_rejected(gateway, anonymous_http):
    """No token: 401 with a Bearer challenge and a JSON error."""
    response = anonymous_http.get(f"{gateway}/api/movies")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]


def test_emulator_token_is_accepted(gateway, http):
    """The demo user's real emulator token (group admins) reads and writes."""
    assert http.get(f"{gateway}/api/movies").status_code == 200
    assert http.post(f"{gateway}/api/movies", json={"title": "authorized"}).status_code == 201


def test_group_without_write_permission_gets_403(gateway, anonymous_http, local_system):
    """A user only in the viewers group reads movies but may neither write movies nor post orders."""
    username, password = f"viewer-{secrets.token_hex(4)}", f"Viewer-{secrets.token_urlsafe(10)}-1a"
    local_system.identity.add_user(username, password, ["viewers"])
    token = local_system.identity.token(username, password)
    headers = {"Authorization": f"Bearer {token}"}
    assert anonymous_http.get(f"{gateway}/api/movies", headers=headers).status_code == 200
    write = anonymous_http.post(f"{gateway}/api/movies", json={"title": "nope"}, headers=headers)
    assert write.status_code == 403
    assert "movies.write" in write.json()["error"]
    billing = anonymous_http.post(f"{gateway}/api/billing", data=order(new_marker()), headers=headers)
    assert billing.status_code == 403


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json", "/docs"])
def test_operational_endpoints_need_no_token(gateway, anonymous_http, path):
    """Probes, metrics and the API documents stay open."""
    assert anonymous_http.get(f"{gateway}{path}").status_code == 200


def test_caller_identity_travels_in_the_billing_message(gateway, http, local_system, rabbitmq):
    """The gateway puts the caller's identity into the AMQP headers of the order it publishes."""
    local_system.stop_service("billing")  # keep the message in the queue long enough to look at it
    try:
        marker = new_marker()
        assert http.post(f"{gateway}/api/billing", data=order(marker),
                         headers={"Content-Type": "application/json"}).status_code == 200
        found = None
        # Messages stay unacknowledged while we look; closing the channel puts every one of them back.
        with rabbitmq.channel() as channel:
            while found is None:
                method, properties, body = channel.basic_get(BILLING_QUEUE.name, auto_ack=False)
                assert method is not None, f"the order is not in {BILLING_QUEUE.name}"
                if json.loads(body).get("user_id") == marker:
                    found = properties.headers
    finally:
        local_system.start_service("billing")
    assert found["x-principal-username"] == "demo"
    assert found["x-principal-sub"]
    assert found["x-request-id"]


def test_running_gateway_accepts_tokens_after_the_emulator_restarts(gateway, anonymous_http, local_system):
    """The emulator forgets its pools when it stops; on start it re-creates the pool with the same ids, so the
    gateway, left running, accepts the new tokens."""
    gateway_pid = local_system.service("gateway").pid()
    local_system.stop_service("cognito")
    local_system.start_service("cognito")
    headers = {"Authorization": f"Bearer {local_system.token()}"}
    assert anonymous_http.get(f"{gateway}/api/movies", headers=headers).status_code == 200
    assert local_system.service("gateway").pid() == gateway_pid
