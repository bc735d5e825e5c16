"""HTTP of the emulated managed login: the login and error pages, and the handler of its endpoints.

The logic (the authorization request check, codes, PKCE) is in ``local_system.identity.managed_login``.
"""

from __future__ import annotations

import html
import json
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from contract.web import SECURITY_HEADERS, content_security_policy
from local_system.identity.cognito import CognitoError
from local_system.identity.managed_login import (
    MAX_FORM_BYTES,
    REQUEST_FIELDS,
    STYLESHEET,
    AuthorizeError,
    ManagedLogin,
)
from local_system.identity.web_client import describe_client
from local_system.processes import LocalSystemError


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
