"""``scripts/smoke_test.py`` against the full local system (test profile): what `make smoke` does after `make up`,
and what the delivery pipeline does after each deployment, with a token from the local Cognito emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke_test.py"


def _run_script(url: str, token: str, *args: str) -> subprocess.CompletedProcess:
    """The script as its own process, token in the environment (never on the command line)."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--url", url, *args],
        env={"SMOKE_TOKEN": token, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_smoke_script_passes_against_the_local_system(gateway_url, access_token):
    """The script, run as a separate process with the token in SMOKE_TOKEN (as `make smoke` runs it), passes."""
    result = _run_script(gateway_url, access_token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke test passed" in result.stdout
    assert access_token not in result.stdout + result.stderr


def test_smoke_script_fails_when_the_gateway_is_down(local_system, gateway_url, access_token):
    """With the gateway stopped the script fails (exit 1) instead of passing or hanging."""
    local_system.stop_service("gateway")
    try:
        result = _run_script(gateway_url, access_token, "--timeout", "2")
    finally:
        local_system.start_service("gateway")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "unreachable" in result.stderr
