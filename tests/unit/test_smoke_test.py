"""Tests of ``scripts/smoke_test.py`` against a stub gateway and token endpoint on 127.0.0.1.

The stub answers as the deployed system does (``/health`` 200, ``/api/movies`` 401 without a valid bearer
token, 200 with one; ``/oauth2/token`` issues a token for the right client id and secret), and can be told to
misbehave, so each test checks that the script passes or fails for the right reason.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke_test.py"
CLIENT_ID = "machine-client"
CLIENT_SECRET = "s3cr3t-value-never-printed"
GOOD_TOKEN = "good-token-never-printed"
LOGIN_PATH = "/oauth2/authorize"


smoke_test = load_script("smoke_test")


@dataclass
class StubBehaviour:
    """How the stub answers; tests change it to simulate broken deployments."""

    health_failures: int = 0
    """Answer 503 to this many /health requests before answering 200."""
    enforce_auth: bool = True
    accept_token: bool = True
    token_requests: list[dict] = field(default_factory=list)
    health_requests: int = 0
    health_body: dict = field(default_factory=lambda: {"status": "ok", "service": "gateway"})
    health_content_type: str = "application/json"
    login_redirect: bool = False
    """Answer every request but the login page with a 302 to it, as the prod load balancer's Cognito rule does."""
    login_page_requests: int = 0


class StubHandler(BaseHTTPRequestHandler):
    """A gateway (``/health``, ``/api/movies``) and a Cognito-like ``/oauth2/token`` in one server."""

    behaviour: StubBehaviour

    def log_message(self, format, *args):
        """Keep the test output quiet."""

    def _answer(self, status: int, body: dict | bytes, content_type: str = "application/json", **headers) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        """/health and /api/movies (and, with ``login_redirect``, a login page in front of everything)."""
        behaviour = self.server.behaviour
        if self.path.startswith(LOGIN_PATH):
            behaviour.login_page_requests += 1
            return self._answer(200, b"<html><body><form>Sign in</form></body></html>", "text/html; charset=utf-8")
        if behaviour.login_redirect:
            return self._answer(302, b"", "text/html", Location=f"{LOGIN_PATH}?redirect_uri={self.path}")
        if self.path == "/health":
            behaviour.health_requests += 1
            if behaviour.health_requests <= behaviour.health_failures:
                return self._answer(503, {"status": "starting"})
            return self._answer(200, behaviour.health_body, behaviour.health_content_type)
        if self.path == "/api/movies":
            authorization = self.headers.get("Authorization", "")
            valid = behaviour.accept_token and authorization == f"Bearer {GOOD_TOKEN}"
            if behaviour.enforce_auth and not valid:
                return self._answer(401, {"error": "authentication required"})
            return self._answer(200, {"movies": []})
        return self._answer(404, {"error": "not found"})

    def do_POST(self):
        """/oauth2/token with client_secret_basic, as Cognito does."""
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        self.server.behaviour.token_requests.append(form)
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if self.path != "/oauth2/token":
            return self._answer(404, {"error": "not found"})
        if form.get("grant_type") != "client_credentials":
            return self._answer(400, {"error": "unsupported_grant_type"})
        if self.headers.get("Authorization") != expected:
            return self._answer(400, {"error": "invalid_client"})
        return self._answer(200, {"access_token": GOOD_TOKEN, "token_type": "Bearer", "expires_in": 3600})


@pytest.fixture
def stub() -> Iterator[tuple[str, StubBehaviour]]:
    """The stub server on an ephemeral 127.0.0.1 port: (base URL, behaviour to tweak)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    server.behaviour = StubBehaviour()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.behaviour
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_smoke_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The script reads SMOKE_* variables; a developer's shell must not leak into the tests."""
    for name in list(os.environ):
        if name.startswith("SMOKE_"):
            monkeypatch.delenv(name)


def run(*args: str) -> int:
    """``main`` with fast retries (the stub answers at once)."""
    return smoke_test.main([*args, "--interval", "0.05", "--timeout", "5"])


def test_passes_with_a_token(stub, capsys):
    """A healthy, protected gateway and a valid token: exit 0, every check reported."""
    url, _ = stub
    assert run("--url", url, "--token", GOOD_TOKEN) == 0
    out = capsys.readouterr().out
    assert "GET /health -> 200" in out
    assert "without a token -> 401" in out
    assert "with a token -> 200" in out


def test_token_from_environment(stub, monkeypatch):
    """SMOKE_TOKEN is used when --token is absent (how `make smoke` could pass it without argv)."""
    url, _ = stub
    monkeypatch.setenv("SMOKE_TOKEN", GOOD_TOKEN)
    parser_args = smoke_test.build_parser().parse_args(["--url", url])
    assert parser_args.token == GOOD_TOKEN
    assert run("--url", url) == 0


def test_passes_with_client_credentials(stub, monkeypatch, capsys):
    """The client-credentials flow: secret from SMOKE_CLIENT_SECRET, Basic auth, then the API call."""
    url, behaviour = stub
    monkeypatch.setenv("SMOKE_CLIENT_SECRET", CLIENT_SECRET)
    assert run("--url", url, "--token-url", f"{url}/oauth2/token", "--client-id", CLIENT_ID) == 0
    assert behaviour.token_requests == [{"grant_type": "client_credentials", "client_id": CLIENT_ID}]
    captured = capsys.readouterr()
    assert CLIENT_SECRET not in captured.out + captured.err
    assert GOOD_TOKEN not in captured.out + captured.err


def test_requests_the_given_scope(stub):
    """--scope is sent to the token endpoint (otherwise Cognito grants every scope of the client)."""
    url, behaviour = stub
    token = smoke_test.client_credentials_token(
        f"{url}/oauth2/token", CLIENT_ID, CLIENT_SECRET, "movies-api/movies.read"
    )
    assert token == GOOD_TOKEN
    assert behaviour.token_requests[0]["scope"] == "movies-api/movies.read"


def test_fails_when_the_secret_is_wrong_without_printing_it(stub, capsys):
    """A rejected client: exit 1 with the OAuth error code, and the (wrong) secret is not in the output."""
    url, _ = stub
    wrong = "wrong-secret-value"
    code = run("--url", url, "--token-url", f"{url}/oauth2/token", "--client-id", CLIENT_ID, "--client-secret", wrong)
    assert code == 1
    captured = capsys.readouterr()
    assert "invalid_client" in captured.err
    assert wrong not in captured.out + captured.err


def test_fails_when_the_api_is_not_protected(stub, capsys):
    """An API that answers 200 without a token is a failed smoke test, not a pass."""
    url, behaviour = stub
    behaviour.enforce_auth = False
    assert run("--url", url, "--token", GOOD_TOKEN) == 1
    assert "without a token answered 200, expected 401" in capsys.readouterr().err


def test_fails_when_the_token_is_rejected(stub, capsys):
    """A valid-looking token the gateway rejects (wrong issuer, missing scope, ...): exit 1."""
    url, behaviour = stub
    behaviour.accept_token = False
    assert run("--url", url, "--token", GOOD_TOKEN) == 1
    assert "with a token answered 401, expected 200" in capsys.readouterr().err


def test_waits_for_health(stub):
    """/health answering 503 a few times is retried within --wait (a deployment still warming up)."""
    url, behaviour = stub
    behaviour.health_failures = 3
    assert run("--url", url, "--token", GOOD_TOKEN, "--wait", "10") == 0
    assert behaviour.health_requests == 4


def test_fails_when_health_never_recovers(stub, capsys):
    """Without --wait one failed /health is final: exit 1 naming the status."""
    url, behaviour = stub
    behaviour.health_failures = 1000
    assert run("--url", url, "--token", GOOD_TOKEN) == 1
    assert "GET /health answered 503" in capsys.readouterr().err


def test_fails_when_nothing_listens(capsys):
    """An unreachable gateway is a failure (exit 1), not a crash."""
    assert run("--url", "http://127.0.0.1:9", "--token", GOOD_TOKEN) == 1
    assert "unreachable" in capsys.readouterr().err


def test_fails_against_a_login_redirect_without_following_it(stub, capsys):
    """/health redirected to a login page that answers 200 HTML (an authenticate-cognito rule in front of the
    gateway): exit 1 naming the Location, and the login page is never requested."""
    url, behaviour = stub
    behaviour.login_redirect = True
    assert run("--url", url, "--token", GOOD_TOKEN, "--wait", "10") == 1
    err = capsys.readouterr().err
    assert f"GET /health answered 302, a redirect to {LOGIN_PATH}?redirect_uri=/health" in err
    assert behaviour.login_page_requests == 0


def test_a_redirect_on_the_api_fails_too(stub, monkeypatch, capsys):
    """A 3xx on any request (here the unauthenticated API call) fails the run with its Location."""
    url, behaviour = stub
    real_request = smoke_test.request

    def redirect_the_api(target, **kwargs):
        behaviour.login_redirect = target.endswith("/api/movies")
        return real_request(target, **kwargs)

    monkeypatch.setattr(smoke_test, "request", redirect_the_api)
    assert run("--url", url, "--token", GOOD_TOKEN) == 1
    assert "GET /api/movies answered 302, a redirect to /oauth2/authorize" in capsys.readouterr().err
    assert behaviour.login_page_requests == 0


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ({"status": "ok"}, "application/json", "not the gateway's"),
        ({"status": "ok", "service": "inventory"}, "application/json", "not the gateway's"),
        ({"status": "ok", "service": "gateway"}, "text/html", "content type 'text/html'"),
        (b"<html>Sign in</html>", "text/html", "content type 'text/html'"),
        (b"OK", "application/json", "not JSON"),
    ],
)
def test_health_passes_only_with_the_gateways_own_json(stub, capsys, body, content_type, expected):
    """A 200 that is not the gateway's own /health JSON (another service, an HTML page, plain text) fails."""
    url, behaviour = stub
    behaviour.health_body, behaviour.health_content_type = body, content_type
    assert run("--url", url, "--token", GOOD_TOKEN) == 1
    err = capsys.readouterr().err
    assert "GET /health answered 200" in err and expected in err


def test_health_body_is_the_gateways():
    """The script's expected body names the gateway as the contract does (the real gateway's answer is checked
    by tests/integration/test_smoke_gateway_process.py and the e2e smoke test)."""
    from contract.services import GATEWAY

    assert smoke_test.HEALTH_BODY == {"status": "ok", "service": GATEWAY.name}
    ok = smoke_test.Response(200, json.dumps(smoke_test.HEALTH_BODY).encode(), "application/json; charset=utf-8")
    assert smoke_test.health_problem(ok) is None


def test_fails_against_a_stopped_gateway(capsys):
    """Nothing listens on the gateway's port (a stopped gateway): exit 1 naming /health as unreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The socket is closed: connections to the port are refused.
    assert run("--url", f"http://127.0.0.1:{port}", "--token", GOOD_TOKEN) == 1
    assert "GET /health unreachable" in capsys.readouterr().err


def test_usage_error_without_any_way_to_get_a_token(stub, capsys):
    """Neither a token nor client-credentials options: exit 2 with a hint (after the unauthenticated checks)."""
    url, _ = stub
    assert run("--url", url) == 2
    assert "--token" in capsys.readouterr().err


def test_secret_read_from_cognito_with_the_aws_cli(stub, tmp_path, monkeypatch):
    """--user-pool-id: the secret comes from `aws cognito-idp describe-user-pool-client` in the pool's region.

    A stand-in ``aws`` executable (the one AWS API call of the script) records its arguments.
    """
    url, _ = stub
    calls = tmp_path / "calls.txt"
    fake_aws = tmp_path / "aws"
    fake_aws.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho {CLIENT_SECRET}\n')
    fake_aws.chmod(fake_aws.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    code = run(
        "--url", url, "--token-url", f"{url}/oauth2/token", "--client-id", CLIENT_ID,
        "--user-pool-id", "eu-west-1_AbC123",
    )  # fmt: skip
    assert code == 0
    assert calls.read_text().split() == [
        "cognito-idp", "describe-user-pool-client", "--region", "eu-west-1", "--user-pool-id", "eu-west-1_AbC123",
        "--client-id", CLIENT_ID, "--query", "UserPoolClient.ClientSecret", "--output", "text",
    ]  # fmt: skip


def test_cognito_secret_failure_is_reported(tmp_path, monkeypatch):
    """A failing AWS CLI call (no permission) becomes a smoke-test failure with the CLI's message."""
    fake_aws = tmp_path / "aws"
    fake_aws.write_text("#!/bin/sh\necho 'AccessDeniedException: not authorized' >&2\nexit 254\n")
    fake_aws.chmod(fake_aws.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(smoke_test.SmokeTestError, match="AccessDenied"):
        smoke_test.cognito_client_secret("eu-west-1_AbC123", CLIENT_ID)


def test_rejects_non_http_urls():
    """file:// and other schemes are refused (urllib would happily open them)."""
    with pytest.raises(smoke_test.UsageError):
        smoke_test.request("file:///etc/passwd")


def test_runs_as_a_script(stub):
    """The file runs standalone with the standard library only (as in a bare CodeBuild image)."""
    url, _ = stub
    result = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--url", url, "--token", GOOD_TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "smoke test passed" in result.stdout
