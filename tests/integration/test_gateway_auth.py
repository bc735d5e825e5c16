"""Authentication in a real gateway process (gunicorn), with tokens minted by the test and checked against a
JWKS the test serves on 127.0.0.1, and one real token from the Cognito emulator (moto)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.integration.gateway_process import start_gateway, stop_gateways

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
POOL_ID = f"{REGION}_TestPool1"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL_ID}"
MACHINE_CLIENT, BROWSER_CLIENT = "machine-client-id", "browser-client-id"
SCOPE_PREFIX = "movies-api/"
ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/test/abc"
GATEWAY_PORT = 13099


class KeyServer:
    """Serves a JWKS (RSA keys) and ALB public keys (PEM by kid) on 127.0.0.1, changeable during a test."""

    def __init__(self):
        self.jwks: dict = {"keys": []}
        self.alb_keys: dict[str, str] = {}
        self.jwks_fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.endswith("/.well-known/jwks.json"):
                    server.jwks_fetches += 1
                    body, kind = json.dumps(server.jwks).encode(), "application/json"
                elif self.path.startswith("/alb/") and self.path[5:] in server.alb_keys:
                    body, kind = server.alb_keys[self.path[5:]].encode(), "text/plain"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add_rsa_key(self, kid: str) -> rsa.RSAPrivateKey:
        """Create an RSA key, publish its public half under ``kid``, return the private key."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        self.jwks["keys"].append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return key

    def add_alb_key(self, kid: str) -> ec.EllipticCurvePrivateKey:
        """Create an ALB-style P-256 key and publish its PEM under ``/alb/<kid>``."""
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.alb_keys[kid] = pem.decode()
        return key


@pytest.fixture(scope="module")
def keys():
    server = KeyServer()
    yield server
    server.httpd.shutdown()


@pytest.fixture(scope="module")
def signing_key(keys):
    return keys.add_rsa_key("key-1")


@pytest.fixture(scope="module")
def gateway(keys, signing_key, test_infrastructure):
    """A gateway process with authentication on, trusting the test's JWKS, on its own port (inventory of the
    test profile behind it, so an accepted request really gets an answer)."""
    test_infrastructure.start_service("inventory")
    process = start_gateway(
        test_infrastructure,
        GATEWAY_PORT,
        "gateway-auth-test",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="4",
        AUTH_REQUIRED="true",
        AUTH_ISSUER=ISSUER,
        AUTH_JWKS_URL=f"{keys.url}/{POOL_ID}/.well-known/jwks.json",
        AUTH_ALLOWED_CLIENT_IDS=f"{MACHINE_CLIENT},{BROWSER_CLIENT}",
        AUTH_SCOPE_PREFIX=SCOPE_PREFIX,
        AUTH_GROUP_PERMISSIONS="viewers=movies.read;editors=movies.read movies.write;cashiers=billing.write",
        AUTH_JWKS_MIN_REFRESH_SECONDS="0",
        AUTH_LEEWAY_SECONDS="1",
        AUTH_ALB_ARN=ALB_ARN,
        AUTH_ALB_KEY_URL=f"{keys.url}/alb",
    )
    yield f"http://127.0.0.1:{GATEWAY_PORT}"
    stop_gateways(process)

def mint(key, kid="key-1", alg="RS256", **overrides) -> str:
    """An access token like Cognito's, signed with ``key``; ``overrides`` change or (value None) drop claims."""
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": "user-sub-1", "client_id": MACHINE_CLIENT, "token_use": "access",
        "scope": f"{SCOPE_PREFIX}movies.read", "iat": now, "exp": now + 300, "username": "alice",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_missing_token_is_401_with_bearer_challenge(gateway):
    """No credentials: 401, WWW-Authenticate: Bearer, JSON error."""
    response = requests.get(f"{gateway}/api/movies", timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "authentication required"


@pytest.mark.parametrize("header", ["Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer a.b.c"])
def test_malformed_credentials_are_401(gateway, header):
    """Anything that is not a well-formed bearer JWT is refused."""
    response = requests.get(f"{gateway}/api/movies", headers={"Authorization": header}, timeout=5)
    assert response.status_code == 401
    assert "error" in response.json()


def test_valid_token_with_the_permission_passes(gateway, signing_key):
    """A valid token with movies.read reads movies (inventory answers)."""
    response = requests.get(f"{gateway}/api/movies", headers=bearer(mint(signing_key)), timeout=5)
    assert response.status_code == 200


def test_accepted_token_is_refused_once_it_expires(gateway, signing_key):
    """The gateway caches verified tokens; the cache must not keep one alive past its expiry."""
    token = mint(signing_key, exp=int(time.time()) + 2)
    assert requests.get(f"{gateway}/api/movies", headers=bearer(token), timeout=5).status_code == 200
    time.sleep(4)  # 2 s to expiry + 1 s leeway + margin
    response = requests.get(f"{gateway}/api/movies", headers=bearer(token), timeout=5)
    assert response.status_code == 401


def test_wrong_signature_is_401(gateway):
    """A token signed by another key under a known kid is refused."""
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = requests.get(f"{gateway}/api/movies", headers=bearer(mint(impostor)), timeout=5)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("claims", "phrase"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"iat": int(time.time()) + 600, "exp": int(time.time()) + 900}, "not valid yet"),
        ({"nbf": int(time.time()) + 600}, "not valid yet"),
        ({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}, "another issuer"),
        ({"client_id": "some-other-client"}, "client"),
        ({"token_use": "id"}, "access token is required"),
        ({"token_use": None}, "token_use"),
        ({"exp": None}, "exp"),
    ],
)
def test_invalid_claims_are_401(gateway, signing_key, claims, phrase):
    """Expired, not yet valid, wrong issuer, wrong client, wrong token_use, missing claims: 401 saying why."""
    response = requests.get(f"{gateway}/api/movies", headers=bearer(mint(signing_key, **claims)), timeout=5)
    assert response.status_code == 401
    assert phrase in response.json()["error"]


def test_alg_none_is_refused(gateway):
    """An unsigned token (alg: none) never passes."""
    header = _b64(json.dumps({"alg": "none", "kid": "key-1"}).encode())
    payload = _b64(json.dumps({"iss": ISSUER, "sub": "x", "client_id": MACHINE_CLIENT, "token_use": "access",
                               "scope": f"{SCOPE_PREFIX}movies.read", "iat": int(time.time()),
                               "exp": int(time.time()) + 300}).encode())
    response = requests.get(f"{gateway}/api/movies", headers=bearer(f"{header}.{payload}."), timeout=5)
    assert response.status_code == 401


def test_hs256_signed_with_the_public_key_is_refused(gateway, keys, signing_key):
    """The classic key-confusion attack (HMAC keyed with the RSA public key) is refused."""
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "x", "client_id": MACHINE_CLIENT, "token_use": "access",
              "scope": f"{SCOPE_PREFIX}movies.read", "iat": now, "exp": now + 300}
    segments = [_b64(json.dumps({"alg": "HS256", "kid": "key-1", "typ": "JWT"}).encode()),
                _b64(json.dumps(claims).encode())]
    signature = hmac.new(public_pem, ".".join(segments).encode(), hashlib.sha256).digest()
    token = ".".join([*segments, _b64(signature)])
    response = requests.get(f"{gateway}/api/movies", headers=bearer(token), timeout=5)
    assert response.status_code == 401


def test_missing_permission_is_403(gateway, signing_key):
    """A valid token without billing.write cannot post orders: 403 naming the permission."""
    order = {"user_id": "1", "number_of_items": 1, "total_amount": "1"}
    response = requests.post(f"{gateway}/api/billing", json=order, headers=bearer(mint(signing_key)), timeout=5)
    assert response.status_code == 403
    assert "billing.write" in response.json()["error"]
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [("get", "/api/movies", "movies.read"), ("post", "/api/movies", "movies.write"),
     ("post", "/api/billing", "billing.write")],
)
def test_each_permission_granted_by_scope(gateway, signing_key, method, path, permission):
    """Machine clients get each permission from the matching OAuth scope, and only that one."""
    body = {"title": "scoped"} if path == "/api/movies" else {"user_id": "1", "number_of_items": 1, "total_amount": 1}
    granted = mint(signing_key, scope=f"{SCOPE_PREFIX}{permission}")
    others = " ".join(f"{SCOPE_PREFIX}{p}" for p in ("movies.read", "movies.write", "billing.write") if p != permission)
    refused = mint(signing_key, scope=others + f" {permission}")  # unprefixed scope names do not count
    ok = requests.request(method, f"{gateway}{path}", json=body, headers=bearer(granted), timeout=5)
    assert ok.status_code in (200, 201)
    denied = requests.request(method, f"{gateway}{path}", json=body, headers=bearer(refused), timeout=5)
    assert denied.status_code == 403


@pytest.mark.parametrize(
    ("group", "method", "path", "allowed"),
    [("viewers", "get", "/api/movies", True), ("viewers", "post", "/api/movies", False),
     ("editors", "post", "/api/movies", True), ("cashiers", "post", "/api/billing", True),
     ("cashiers", "get", "/api/movies", False)],
)
def test_each_permission_granted_by_group(gateway, signing_key, group, method, path, allowed):
    """Human users get permissions through their Cognito groups, as mapped by AUTH_GROUP_PERMISSIONS."""
    order = {"user_id": "1", "number_of_items": 1, "total_amount": 1}
    body = {"title": "grouped"} if path == "/api/movies" else order
    token = mint(signing_key, client_id=BROWSER_CLIENT, scope="aws.cognito.signin.user.admin",
                 **{"cognito:groups": [group]})
    response = requests.request(method, f"{gateway}{path}", json=body, headers=bearer(token), timeout=5)
    assert (response.status_code in (200, 201)) is allowed
    if not allowed:
        assert response.status_code == 403


def test_key_rotation_new_kid_is_fetched(gateway, keys):
    """A token signed with a key published after start-up (rotation) is accepted once the JWKS shows it."""
    new_key = keys.add_rsa_key("key-2")
    fetches = keys.jwks_fetches
    response = requests.get(f"{gateway}/api/movies", headers=bearer(mint(new_key, kid="key-2")), timeout=5)
    assert response.status_code == 200
    assert keys.jwks_fetches > fetches


def test_unknown_kid_is_401(gateway, signing_key):
    """A kid the JWKS does not have, even after a refetch, is refused."""
    response = requests.get(f"{gateway}/api/movies", headers=bearer(mint(signing_key, kid="nope")), timeout=5)
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json", "/docs"])
def test_operational_endpoints_stay_open(gateway, path):
    """Health, readiness, metrics and the API documents need no token."""
    assert requests.get(f"{gateway}{path}", timeout=5).status_code == 200


def _alb_headers(alb_key, signer, sub="user-sub-1", kid="alb-key-1"):
    now = int(time.time())
    data = jwt.encode({"sub": sub, "email": "alice@example.com", "exp": now + 120, "iss": ISSUER},
                      alb_key, algorithm="ES256", headers={"kid": kid, "signer": signer, "client": BROWSER_CLIENT})
    return data


def test_alb_session_header_is_verified(gateway, keys, signing_key):
    """A browser session: the ALB's signed x-amzn-oidc-data plus the forwarded access token is accepted;
    the same header signed for another ALB, or with another key, is refused."""
    alb_key = keys.add_alb_key("alb-key-1")
    access = mint(signing_key, client_id=BROWSER_CLIENT, scope="", **{"cognito:groups": ["viewers"]})
    good = {"x-amzn-oidc-data": _alb_headers(alb_key, ALB_ARN), "x-amzn-oidc-accesstoken": access}
    assert requests.get(f"{gateway}/api/movies", headers=good, timeout=5).status_code == 200

    other_alb = {**good, "x-amzn-oidc-data": _alb_headers(alb_key, ALB_ARN.replace("test", "evil"))}
    assert requests.get(f"{gateway}/api/movies", headers=other_alb, timeout=5).status_code == 401
    forged_key = ec.generate_private_key(ec.SECP256R1())
    forged = {**good, "x-amzn-oidc-data": _alb_headers(forged_key, ALB_ARN)}
    assert requests.get(f"{gateway}/api/movies", headers=forged, timeout=5).status_code == 401
    other_user = {**good, "x-amzn-oidc-data": _alb_headers(alb_key, ALB_ARN, sub="someone-else")}
    assert requests.get(f"{gateway}/api/movies", headers=other_user, timeout=5).status_code == 401


def test_identity_is_logged_never_the_token(gateway, signing_key, test_infrastructure):
    """The caller's name appears in the gateway's request log line; the token itself never does."""
    token = mint(signing_key, username="carol")
    requests.get(f"{gateway}/api/movies", headers={**bearer(token), "X-Request-ID": "auth-log-check"}, timeout=5)
    time.sleep(0.3)
    log_text = (test_infrastructure.state_dir / "gateway-auth-test.log").read_text()
    lines = [json.loads(line) for line in log_text.splitlines() if "auth-log-check" in line and line.startswith("{")]
    assert any(line.get("principal") == "carol" for line in lines)
    assert token not in log_text

