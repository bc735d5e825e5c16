"""An emulation of Cognito's managed login (moto has none): authorize, token and logout endpoints.

The web front end signs in exactly as it does on AWS: authorization code with PKCE (S256), a public client,
the ``state`` parameter. ``GET /oauth2/authorize`` checks the request against the app client registered in the
emulated pool (its callback URLs and OAuth flows) and shows a login form; the form's POST checks the password
with the emulator's ``InitiateAuth`` and redirects to ``redirect_uri?code=...&state=...``; ``POST /oauth2/token``
trades the one-time code (5 minutes, used once, in memory only) and its PKCE verifier for the tokens.

What differs from AWS (docs/local-system.md): plain HTTP on 127.0.0.1, one fixed look without hosted UI
branding, no sign-up, MFA, federation or refresh-token grant; the tokens are those moto issues for
USER_PASSWORD_AUTH, obtained when the password is checked.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from contract.web import SECURITY_HEADERS, content_security_policy
from local_system.identity.cognito import CognitoApi, CognitoError
from local_system.identity.web_client import describe_client
from local_system.processes import LocalSystemError

#: Lifetime of an authorization code (Cognito's is 5 minutes too).
CODE_LIFETIME_SECONDS = 300
#: Largest form body accepted (a login form or a token request is a few hundred bytes).
MAX_FORM_BYTES = 16 * 1024
STYLESHEET = Path(__file__).with_name("managed_login.css")
#: The authorization request's parameters the login form carries along (hidden fields).
REQUEST_FIELDS = ("client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method")


class AuthorizeError(ValueError):
    """An authorization request the login page refuses (shown to the user, never redirected)."""


@dataclass(frozen=True)
class Grant:
    """What a code stands for until it is traded (or expires)."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    tokens: dict
    expires_at: float


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class ManagedLogin:
    """The login's state: the pool it signs into, the site it serves, the outstanding codes (memory only)."""

    def __init__(self, api: CognitoApi, pool_id: str, site_origin: str):
        self.api = api
        self.pool_id = pool_id
        self.site_origin = site_origin
        self._codes: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def check_request(self, params: dict[str, str]) -> None:
        """Refuse an authorization request the registered client does not allow (AuthorizeError says why)."""
        if params.get("response_type", "code") != "code":
            raise AuthorizeError("response_type must be code")
        try:
            client = describe_client(self.api, self.pool_id, params.get("client_id", ""))
        except CognitoError:
            raise AuthorizeError("unknown client_id") from None
        if params.get("redirect_uri") not in client.get("CallbackURLs", []):
            raise AuthorizeError("redirect_uri is not a registered callback URL of this client")
        if "code" not in client.get("AllowedOAuthFlows", []):
            raise AuthorizeError("this client may not use the authorization code flow")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            raise AuthorizeError("PKCE is required: code_challenge with code_challenge_method=S256")
        if not params.get("state"):
            raise AuthorizeError("state is required")

    def sign_in(self, params: dict[str, str], username: str, password: str) -> str | None:
        """Check the password; on success the redirect URL with a new code and the state, else None."""
        self.check_request(params)
        try:
            result = self.api.call(
                "InitiateAuth",
                {
                    "ClientId": params["client_id"],
                    "AuthFlow": "USER_PASSWORD_AUTH",
                    "AuthParameters": {"USERNAME": username, "PASSWORD": password},
                },
            )["AuthenticationResult"]
        except CognitoError:
            return None  # wrong user name or password (Cognito does not say which)
        tokens = {
            "access_token": result["AccessToken"],
            "id_token": result.get("IdToken", ""),
            "token_type": "Bearer",
            "expires_in": int(result.get("ExpiresIn", 3600)),
        }
        code = secrets.token_urlsafe(32)
        grant = Grant(params["client_id"], params["redirect_uri"], params["code_challenge"], tokens,
                      time.monotonic() + CODE_LIFETIME_SECONDS)
        with self._lock:
            self._forget_expired()
            self._codes[code] = grant
        query = urllib.parse.urlencode({"code": code, "state": params["state"]})
        return f"{params['redirect_uri']}?{query}"

    def redeem(self, form: dict[str, str]) -> tuple[int, dict]:
        """The token endpoint: (status, JSON body). The code is gone after the first attempt, right or wrong."""
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.expires_at < time.monotonic():
            return 400, {"error": "invalid_grant", "error_description": "unknown, used or expired code"}
        if form.get("client_id") != grant.client_id or form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "client_id or redirect_uri differ"}
        verifier = form.get("code_verifier", "")
        if not 43 <= len(verifier) <= 128 or not secrets.compare_digest(s256(verifier), grant.code_challenge):
            return 400, {"error": "invalid_grant", "error_description": "code_verifier does not match"}
        return 200, grant.tokens

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for code in [code for code, grant in self._codes.items() if grant.expires_at < now]:
            del self._codes[code]


def login_page(params: dict[str, str], error: str = "") -> str:
    """The login form (no script; the stylesheet is external, so the strict CSP holds)."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""))}">' for name in REQUEST_FIELDS
    )
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/login.css"></head><body><main>'
        "<h1>Sign in</h1><p>Movies (local emulation of Cognito's managed login)</p>"
        f'{message}<form method="post" action="/login">{hidden}'
        '<label for="username">User name</label>'
        '<input id="username" name="username" autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form></main></body></html>'
    )


def error_page(message: str) -> str:
    """A refused authorization request (never redirected: the redirect URI itself may be the problem)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in error</title>'
        '<link rel="stylesheet" href="/login.css"></head><body><main><h1>Sign-in error</h1>'
        f'<p class="error" role="alert">{html.escape(message)}</p></main></body></html>'
    )


class LoginHandler(BaseHTTPRequestHandler):
    """HTTP of the managed login; ``server.login`` is the :class:`ManagedLogin`."""

    server_version = "managed-login"
    sys_version = ""

    @property
    def login(self) -> ManagedLogin:
        return self.server.login  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:
        # The query string holds codes and state: log the path only.
        path = self.path.split("?", 1)[0]
        print(f"login {self.command} {path} {args[1] if len(args) > 1 else ''}", flush=True)

    # -- GET ---------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/login.css":
            self._send(200, STYLESHEET.read_bytes(), "text/css; charset=utf-8")
        elif url.path in ("/oauth2/authorize", "/login"):
            try:
                self.login.check_request(params)
            except AuthorizeError as exc:
                self._page(400, error_page(str(exc)))
                return
            self._page(200, login_page(params))
        elif url.path == "/logout":
            self._logout(params)
        else:
            self._page(404, error_page("not found"))

    def _logout(self, params: dict[str, str]) -> None:
        """Cognito's /logout: back to ``logout_uri`` when it is registered for the client."""
        try:
            client = describe_client(self.login.api, self.login.pool_id, params.get("client_id", ""))
        except CognitoError:
            self._page(400, error_page("unknown client_id"))
            return
        target = params.get("logout_uri", "")
        if target not in client.get("LogoutURLs", []):
            self._page(400, error_page("logout_uri is not a registered sign-out URL of this client"))
            return
        self._redirect(target)

    # -- POST --------------------------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        form = self._form()
        if form is None:
            return
        if path == "/login":
            params = {name: form.get(name, "") for name in REQUEST_FIELDS}
            try:
                target = self.login.sign_in(params, form.get("username", ""), form.get("password", ""))
            except AuthorizeError as exc:
                self._page(400, error_page(str(exc)))
                return
            except LocalSystemError:
                self._page(503, error_page("the identity emulator does not answer; run: make up"))
                return
            if target is None:
                self._page(401, login_page(params, "Incorrect user name or password."))
            else:
                self._redirect(target)
        elif path == "/oauth2/token":
            status, body = self.login.redeem(form)
            self._send(status, json.dumps(body).encode(), "application/json", cors=True)
        else:
            self._page(404, error_page("not found"))

    def do_OPTIONS(self) -> None:
        """CORS preflight of the token endpoint (the site calls it from its own origin)."""
        self.send_response(204)
        self._cors_headers()
        self.send_header("Access-Control-Allow-Methods", "POST")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _form(self) -> dict[str, str] | None:
        """The url-encoded body; None (after answering 400/413) when it is not one."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_FORM_BYTES:
            self._send(413 if length > 0 else 400, b'{"error": "invalid_request"}', "application/json", cors=True)
            return None
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        return dict(urllib.parse.parse_qsl(body))

    # -- answers -----------------------------------------------------------------------------------------
    def _cors_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", self.login.site_origin)
        self.send_header("Vary", "Origin")

    def _security_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        # The form posts here, and its answer redirects to the site: form-action must allow both.
        self.send_header("Content-Security-Policy", content_security_policy([], [self.login.site_origin]))

    def _send(self, status: int, body: bytes, content_type: str, cors: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self._security_headers()
        if cors:
            self._cors_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self, status: int, page: str) -> None:
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def _redirect(self, target: str) -> None:
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self._security_headers()
        self.end_headers()
