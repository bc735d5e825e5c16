"""The local web edge over HTTP: what it serves, with which headers, and the emulated managed login."""

from __future__ import annotations

import contextlib
import re
import urllib.parse

import boto3
import pytest
import requests

from contract import web
from local_system.emulator_api import DUMMY_KEY, REGION
from local_system.identity.managed_login import s256
from local_system.web_edge import WEB_BUCKET

VERIFIER = "v" * 43


@pytest.fixture
def login_url(local_system) -> str:
    """The emulated managed login of the test system."""
    return f"http://127.0.0.1:{local_system.profile.web_login_port}"


def _authorize_params(site: str, client_id: str, verifier: str = VERIFIER) -> dict[str, str]:
    return {
        "response_type": "code", "client_id": client_id, "redirect_uri": f"{site}/", "state": "s-1",
        "scope": "openid", "code_challenge": s256(verifier), "code_challenge_method": "S256",
    }


def _code(site: str, login_url: str, client_id: str, login: tuple[str, str]) -> str:
    """Sign in with the form as a browser would; the code from the redirect."""
    form = {**_authorize_params(site, client_id), "username": login[0], "password": login[1]}
    answer = requests.post(f"{login_url}/login", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["s-1"]
    return query["code"][0]


def _trade(site: str, login_url: str, client_id: str, code: str, verifier: str = VERIFIER) -> requests.Response:
    form = {"grant_type": "authorization_code", "client_id": client_id, "code": code,
            "redirect_uri": f"{site}/", "code_verifier": verifier}
    return requests.post(f"{login_url}/oauth2/token", data=form, headers={"Origin": site}, timeout=10)


def _config(site: str) -> dict:
    return requests.get(f"{site}/config.json", timeout=10).json()


def test_index_is_revalidated_and_carries_the_security_headers(site):
    """index.html: Cache-Control no-cache, the contract's security headers and a CSP without 'unsafe-inline'."""
    answer = requests.get(f"{site}/", timeout=10)
    assert answer.status_code == 200 and "<title>Movies</title>" in answer.text
    assert answer.headers["Cache-Control"] == web.REVALIDATE
    for name, value in web.SECURITY_HEADERS.items():
        assert answer.headers[name] == value
    assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]


def test_assets_are_cached_for_a_year(site):
    """Files under assets/ get the immutable one-year Cache-Control and a JavaScript content type."""
    answer = requests.get(f"{site}/assets/app.js", timeout=10)
    assert answer.headers["Cache-Control"] == web.IMMUTABLE
    assert answer.headers["Content-Type"].startswith("text/javascript")


def test_spa_route_gets_index_but_a_missing_asset_is_404(site):
    """A path without an extension is a route of the app (index.html); a missing file is a 404."""
    assert "<title>Movies</title>" in requests.get(f"{site}/movies/3", timeout=10).text
    assert requests.get(f"{site}/assets/missing.js", timeout=10).status_code == 404
    assert requests.get(f"{site}/nothing.css", timeout=10).status_code == 404


def test_path_traversal_stays_inside_web(site):
    """An encoded ../ never reaches a file outside web/."""
    answer = requests.get(f"{site}/assets/..%2f..%2fMakefile", timeout=10)
    assert "VENV_PY" not in answer.text


def test_config_names_the_login_endpoints_and_the_spa_client(site, login_url, local_system):
    """config.json: authorize/token/logout on the login port and the pool's movies-web client id."""
    config = _config(site)
    assert config["api"] == "/api"
    assert config["auth"]["authorize_url"] == f"{login_url}/oauth2/authorize"
    assert config["auth"]["token_url"] == f"{login_url}/oauth2/token"
    assert config["auth"]["client_id"] == local_system.identity.saved_pool().web_client_id


def test_api_is_proxied_to_the_gateway(site, access_token):
    """/api/* reaches the gateway: 401 JSON without a token, 200 with one, the request id kept."""
    anonymous = requests.get(f"{site}/api/movies", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]
    answer = requests.get(f"{site}/api/movies", headers={"Authorization": f"Bearer {access_token}",
                                                          "X-Request-ID": "web-edge-test-1"}, timeout=10)
    assert answer.status_code == 200 and isinstance(answer.json(), list)
    assert answer.headers["X-Request-ID"] == "web-edge-test-1"


def test_the_api_reference_is_proxied_to_the_gateway_without_a_token(site):
    """/openapi.json and /docs come from the gateway (as CloudFront routes them to the ALB), not the SPA."""
    document = requests.get(f"{site}/openapi.json", timeout=10)
    assert document.status_code == 200 and "/api/movies/{id}/poster" in document.json()["paths"]
    page = requests.get(f"{site}/docs", timeout=10)
    assert page.status_code == 200 and "/openapi.json" in page.text


def test_post_body_is_forwarded(site, access_token):
    """A JSON body posted to the site reaches the gateway whole (a 201 with the movie it describes)."""
    answer = requests.post(f"{site}/api/movies", json={"title": "Through the edge " + "é" * 50},
                           headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
    assert answer.status_code == 201 and answer.json()["title"].endswith("é" * 50)


def test_gateway_down_is_a_502_json(site, local_system):
    """With the gateway stopped, /api answers 502 with a JSON error instead of hanging or a stack trace."""
    local_system.stop_service("gateway")
    try:
        answer = requests.get(f"{site}/api/movies", timeout=10)
        assert answer.status_code == 502 and answer.json() == {"error": "the origin is unreachable"}
    finally:
        local_system.start_service("gateway")


def test_code_trades_once_for_tokens_the_gateway_accepts(site, login_url, demo_login):
    """The code and its verifier give an access token the gateway accepts; the same code a second time fails."""
    client_id = _config(site)["auth"]["client_id"]
    code = _code(site, login_url, client_id, demo_login)
    first = _trade(site, login_url, client_id, code)
    assert first.status_code == 200 and first.headers["Access-Control-Allow-Origin"] == site
    token = first.json()["access_token"]
    movies = requests.get(f"{site}/api/movies", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert movies.status_code == 200
    assert _trade(site, login_url, client_id, code).json()["error"] == "invalid_grant"


def test_wrong_verifier_is_refused(site, login_url, demo_login):
    """PKCE: a code with a verifier that does not hash to its challenge gives no token."""
    client_id = _config(site)["auth"]["client_id"]
    code = _code(site, login_url, client_id, demo_login)
    answer = _trade(site, login_url, client_id, code, verifier="w" * 43)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"redirect_uri": "https://evil.example/"}, "redirect_uri"),
        ({"client_id": "nope"}, "unknown client_id"),
        ({"code_challenge_method": "plain"}, "S256"),
        ({"state": ""}, "state"),
    ],
    ids=["unregistered-redirect", "unknown-client", "no-s256", "no-state"],
)
def test_authorize_refuses_bad_requests(site, login_url, change, message):
    """The login page refuses what Cognito refuses, with a page saying why (and never redirects)."""
    params = {**_authorize_params(site, _config(site)["auth"]["client_id"]), **change}
    answer = requests.get(f"{login_url}/oauth2/authorize", params=params, allow_redirects=False, timeout=10)
    assert answer.status_code == 400 and re.search(message, answer.text)


def test_logout_redirects_only_to_a_registered_uri(site, login_url):
    """/logout sends the browser back to a registered logout_uri, and refuses any other."""
    client_id = _config(site)["auth"]["client_id"]
    good = requests.get(f"{login_url}/logout", params={"client_id": client_id, "logout_uri": f"{site}/"},
                        allow_redirects=False, timeout=10)
    assert good.status_code == 302 and good.headers["Location"] == f"{site}/"
    bad = requests.get(f"{login_url}/logout", params={"client_id": client_id, "logout_uri": "https://evil.example/"},
                       allow_redirects=False, timeout=10)
    assert bad.status_code == 400


def test_posters_come_from_the_web_bucket_cached_for_a_year(site, local_system):
    """/posters/* is read from the emulator's movies-local-web bucket (bytes and type kept, a year's cache);
    a missing poster is a 404 and writing through the site is refused."""
    s3 = boto3.client("s3", endpoint_url=local_system.identity.url, region_name=REGION,
                      aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=WEB_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=WEB_BUCKET, Key="posters/999/edge-test/thumbnail.webp", Body=b"RIFF-webp-bytes",
                  ContentType="image/webp")
    answer = requests.get(f"{site}/posters/999/edge-test/thumbnail.webp", timeout=10)
    assert answer.status_code == 200 and answer.content == b"RIFF-webp-bytes"
    assert answer.headers["Content-Type"] == "image/webp"
    assert answer.headers["Cache-Control"] == web.IMMUTABLE
    assert requests.get(f"{site}/posters/999/missing/thumbnail.webp", timeout=10).status_code == 404
    assert requests.put(f"{site}/posters/999/x", data=b"x", timeout=10).status_code == 405
