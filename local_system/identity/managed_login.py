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
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from local_system.identity.cognito import CognitoApi, CognitoError
from local_system.identity.web_client import describe_client

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
