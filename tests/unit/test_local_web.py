"""The local web edge's settings: the SPA client, the gateway's trust in it, the CSP, the browser prereq."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_system import prereqs
from local_system.identity.cognito import PoolInfo, gateway_settings
from local_system.identity.web_client import web_client_settings
from local_system.profiles import get_profile
from local_system.web_edge import EdgeSettings


def test_gateway_accepts_both_local_clients():
    """The gateway trusts tokens of the CLI client (make token) and of the web front end's client."""
    info = PoolInfo(pool_id="eu-west-1_x", client_id="cli", username="demo", password="p", web_client_id="web")
    assert gateway_settings(info, "http://127.0.0.1:1")["AUTH_ALLOWED_CLIENT_IDS"] == "cli,web"


def test_pool_saved_before_the_web_client_still_loads():
    """An identity.json without web_client_id (written before it existed) gives an empty one, not a crash."""
    info = PoolInfo(pool_id="eu-west-1_x", client_id="cli", username="demo", password="p")
    assert info.web_client_id == ""
    assert gateway_settings(info, "http://127.0.0.1:1")["AUTH_ALLOWED_CLIENT_IDS"] == "cli"


def test_web_client_is_public_code_flow_with_the_site_as_only_callback():
    """The SPA client has no secret, only the code flow, and the local site root as callback and logout URL."""
    settings = web_client_settings("eu-west-1_x", 18000)
    assert settings["GenerateSecret"] is False
    assert settings["AllowedOAuthFlows"] == ["code"]
    assert settings["CallbackURLs"] == settings["LogoutURLs"] == ["http://127.0.0.1:18000/"]


def test_site_csp_allows_fetch_to_the_login_and_the_emulator_only():
    """connect-src of the site: itself, the managed login (token endpoint) and the emulator (S3 upload)."""
    settings = EdgeSettings(get_profile("test"), "client")
    assert "connect-src 'self' http://127.0.0.1:18001 http://127.0.0.1:26600;" in settings.csp
    assert json.loads(settings.config)["auth"]["client_id"] == "client"


def test_web_and_login_ports_differ_between_profiles():
    """dev and test web edges can run side by side (8000/8001 and 18000/18001)."""
    dev, test = get_profile("dev"), get_profile("test")
    assert (dev.web_port, dev.web_login_port, test.web_port, test.web_login_port) == (8000, 8001, 18000, 18001)


def test_missing_chromium_without_root_does_not_install(monkeypatch, capsys):
    """Not root and no Chromium: nothing is installed, the apt command is printed, the caller goes on."""
    monkeypatch.setattr(prereqs, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(prereqs.subprocess, "run", lambda *a, **k: pytest.fail("must not run apt-get"))
    assert prereqs.ensure_browser() is False
    assert "apt-get install -y chromium" in capsys.readouterr().err
