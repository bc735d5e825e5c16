"""docker-compose.yml's identity provider: the ids it hard-codes are the ones provisioning produces.

Compose cannot run here (no images), so this runs the same pieces outside containers: moto_server from the
virtualenv (the version the ``identity`` image is pinned to) with the compose file's environment, on a free
127.0.0.1 port; ``identity-init``'s command with its environment (password from .env.example). Then the
gateway's AUTH_* settings from the compose file, with only the JWKS host swapped for the local port, must
accept a token from ``identity-init token`` and grant the demo user the admins' permissions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from contract.permissions import DEMO_GROUP, GROUP_PERMISSIONS
from gateway.auth import Authenticator, AuthSettings
from tests.moto_process import free_port, moto_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_HOST = "http://identity:5000"
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _interpolate(environment: dict, variables: dict[str, str]) -> dict[str, str]:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` from ``variables`` (enough for these services)."""

    def value(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        present = name in variables and (variables[name] != "" or not operator.startswith(":"))
        if present:
            return variables[name]
        assert not operator.endswith("?"), f"{name} is required: {argument}"
        return argument

    return {key: _VARIABLE.sub(value, str(raw)) for key, raw in environment.items()}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return _env_file(REPO / ".env.example")


@pytest.fixture(scope="module")
def emulator(compose: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto_server with the ``identity`` service's environment; its URL. Stopped at the end."""
    environment = _interpolate(compose["services"]["identity"]["environment"], {})
    with moto_server(free_port(), tmp_path_factory.mktemp("moto") / "moto.log", environment) as url:
        yield url


def _run_init(compose: dict, env_example: dict[str, str], url: str, *command: str) -> str:
    """Run identity-init's entrypoint (``python`` = this interpreter) with its environment, against ``url``."""
    service = compose["services"]["identity-init"]
    entrypoint = list(service["entrypoint"])
    assert entrypoint[0] == "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IDENTITY_"))}
    env.update(_interpolate(service["environment"], env_example))
    assert env["IDENTITY_URL"] == COMPOSE_HOST
    env["IDENTITY_URL"] = url  # the only difference: the compose network's host name is not resolvable here
    result = subprocess.run(
        [sys.executable, *entrypoint[1:], *(command or service["command"]), "--wait", "20"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_identity_image_runs_the_tested_moto(compose: dict):
    """The ids are hashes computed by moto's code: the image must be the moto version tested here."""
    for name in ("identity", "identity-init"):
        assert compose["services"][name]["image"].split("@")[0] == f"motoserver/moto:{version('moto')}"


def test_identity_is_internal_and_gateway_waits_for_it(compose: dict):
    services, networks = compose["services"], compose["networks"]
    for name in ("identity", "identity-init"):
        assert "ports" not in services[name]
        assert all(networks[net].get("internal") for net in services[name]["networks"])
    depends = services["gateway"]["depends_on"]
    assert depends["identity"]["condition"] == "service_healthy"
    assert depends["identity-init"]["condition"] == "service_completed_successfully"
    assert services["identity-init"]["environment"]["IDENTITY_DEMO_PASSWORD"].startswith("${IDENTITY_DEMO_PASSWORD:?")


def test_compose_ids_are_what_provisioning_produces(compose: dict, env_example: dict[str, str], emulator: str):
    gateway = _interpolate(compose["services"]["gateway"]["environment"], env_example)
    printed = json.loads(_run_init(compose, env_example, emulator))
    expected = {**printed, "AUTH_JWKS_URL": printed["AUTH_JWKS_URL"].replace(emulator, COMPOSE_HOST)}
    assert {key: gateway.get(key) for key in expected} == expected
    # identity-init runs again on every `docker compose up`: same pool, same ids.
    assert json.loads(_run_init(compose, env_example, emulator)) == printed


def test_token_from_identity_init_passes_the_gateway(
    compose: dict, env_example: dict[str, str], emulator: str, monkeypatch: pytest.MonkeyPatch
):
    _run_init(compose, env_example, emulator)  # provisioned (idempotent), whatever ran before
    token = _run_init(compose, env_example, emulator, "token").strip()
    gateway = _interpolate(compose["services"]["gateway"]["environment"], env_example)
    for key, value in gateway.items():
        if key.startswith(("AUTH_", "COGNITO_")):
            monkeypatch.setenv(key, value.replace(COMPOSE_HOST, emulator))
    settings = AuthSettings.from_env()
    assert settings.required
    principal = Authenticator(settings).verify_access_token(token)
    assert principal.username == "demo"
    assert principal.permissions == frozenset(GROUP_PERMISSIONS[DEMO_GROUP])


def test_identity_healthcheck_passes(compose: dict, emulator: str):
    test = compose["services"]["identity"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    command = [sys.executable, *(part.replace("http://127.0.0.1:5000", emulator) for part in test[2:])]
    subprocess.run(command, check=True, timeout=10)


def test_jwks_is_served_without_credentials(compose: dict, env_example: dict[str, str], emulator: str):
    """The gateway fetches the keys with a plain GET (no AWS signature): moto must route it by path."""
    _run_init(compose, env_example, emulator)
    url = compose["services"]["gateway"]["environment"]["AUTH_JWKS_URL"].replace(COMPOSE_HOST, emulator)
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the local emulator
        assert json.loads(response.read())["keys"]
