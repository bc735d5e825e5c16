"""``scripts/smoke_test.py`` against a real gateway process (gunicorn, authentication on, inventory behind it).

Reuses the gateway of ``test_gateway_auth.py``: it trusts a JWKS the test serves on 127.0.0.1, so the test
mints the access token that Cognito would issue to the machine client.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

# Fixtures of the gateway-auth tests (a gateway process and its key server), used here by name.
from tests.integration.test_gateway_auth import gateway, keys, mint, signing_key  # noqa: F401

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke_test.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("smoke_test_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


smoke_test = _load_script()


def test_passes_against_a_real_gateway(gateway, signing_key, capsys):  # noqa: F811
    """Health 200, 401 without a token, 200 with a valid machine-client token: the script exits 0."""
    assert smoke_test.main(["--url", gateway, "--token", mint(signing_key)]) == 0
    assert "smoke test passed" in capsys.readouterr().out


def test_fails_when_the_gateway_rejects_the_token(gateway, capsys):  # noqa: F811
    """A token signed by a key the gateway does not trust: the script exits 1 at the authenticated call."""
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert smoke_test.main(["--url", gateway, "--token", mint(impostor)]) == 1
    assert "with a token answered 401, expected 200" in capsys.readouterr().err


@pytest.fixture
def login_redirect(gateway) -> Iterator[str]:  # noqa: F811
    """A front on 127.0.0.1 that answers every request with a 302 to the real gateway's /health, which itself
    answers the genuine 200 JSON: a client that followed redirects would pass."""

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", f"{gateway}/health")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fails_behind_a_redirect_even_to_a_healthy_gateway(login_redirect, gateway, signing_key, capsys):  # noqa: F811
    """The script never follows a redirect, not even to the gateway's own healthy /health: exit 1 naming it."""
    assert smoke_test.main(["--url", login_redirect, "--token", mint(signing_key)]) == 1
    assert f"GET /health answered 302, a redirect to {gateway}/health" in capsys.readouterr().err
