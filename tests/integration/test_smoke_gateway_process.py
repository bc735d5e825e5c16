"""``scripts/smoke_test.py`` against a real gateway process (gunicorn, authentication on, inventory behind it).

Reuses the gateway of ``test_gateway_auth.py``: it trusts a JWKS the test serves on 127.0.0.1, so the test
mints the access token that Cognito would issue to the machine client.
"""

from __future__ import annotations

import importlib.util
import sys
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
