"""Authentication and authorization of ``/api/*`` in the gateway.

On AWS the ALB validates the Cognito token first; the gateway checks again (defence in depth), and it is the
only check locally and in the HTTP-only trial deployment. All cryptography is PyJWT's; this module decides
which keys, claims and permissions count.

A caller is accepted with either
* ``Authorization: Bearer <Cognito access token>``: RS256 signature against the pool's JWKS, issuer, expiry,
  ``token_use=access``, an allowed ``client_id``; permissions from OAuth scopes (machine clients) and from
  ``cognito:groups`` mapped by configuration (human users), or
* the ALB's ``x-amzn-oidc-data`` (browser sessions after the ALB's Cognito login): ES256, signed by the
  expected ALB (``signer`` header) with the ALB key of the region; permissions then come from the Cognito
  access token the ALB forwards in ``x-amzn-oidc-accesstoken``, verified like a bearer token.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field

import jwt
from flask import Request

from common.config import ConfigError, env_bool, env_int, env_str

log = logging.getLogger(__name__)

READ_MOVIES, WRITE_MOVIES, WRITE_BILLING = "movies.read", "movies.write", "billing.write"
PERMISSIONS = (READ_MOVIES, WRITE_MOVIES, WRITE_BILLING)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_KID = re.compile(r"^[A-Za-z0-9._=-]{1,128}$")


class AuthError(Exception):
    """The request is not allowed: ``status`` 401 (who are you?), 403 (not allowed) or 503 (cannot check)."""

    def __init__(self, status: int, message: str, oauth_error: str | None = None, scope: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.oauth_error = oauth_error
        self.scope = scope

    def www_authenticate(self) -> str | None:
        """The RFC 6750 challenge for 401 and 403 answers."""
        if self.status not in (401, 403):
            return None
        parts = ['Bearer realm="api"']
        if self.oauth_error:
            # A quoted-string cannot hold a bare '"' (PyJWT messages quote claim names): swap them for "'".
            description = self.message.replace("\\", "/").replace('"', "'")
            parts.append(f'error="{self.oauth_error}"')
            parts.append(f'error_description="{description}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return ", ".join(parts)


def parse_group_permissions(text: str) -> dict[str, frozenset[str]]:
    """Parse ``AUTH_GROUP_PERMISSIONS``: ``group=perm perm;group=perm`` (e.g. ``admins=movies.read movies.write``)."""
    mapping: dict[str, frozenset[str]] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        group, sep, perms = entry.partition("=")
        granted = frozenset(perms.replace(",", " ").split())
        unknown = granted - set(PERMISSIONS)
        if not sep or not group.strip() or unknown:
            raise ConfigError(
                f"AUTH_GROUP_PERMISSIONS entry {entry!r} must look like 'group=movies.read movies.write'"
                + (f"; unknown permission(s): {', '.join(sorted(unknown))}" if unknown else "")
            )
        mapping[group.strip()] = granted
    return mapping


@dataclass(frozen=True)
class AuthSettings:
    """What the gateway trusts. Read from AUTH_* environment variables."""

    required: bool
    issuer: str = ""
    jwks_url: str = ""
    allowed_client_ids: frozenset[str] = frozenset()
    scope_prefix: str = ""
    group_permissions: dict[str, frozenset[str]] = field(default_factory=dict)
    alb_arn: str = ""
    alb_key_url: str = ""
    leeway_seconds: int = 5
    jwks_min_refresh_seconds: int = 30

    @classmethod
    def from_env(cls) -> AuthSettings:
        """AUTH_REQUIRED (default true) and, when required, AUTH_ISSUER, AUTH_ALLOWED_CLIENT_IDS and friends."""
        if not env_bool("AUTH_REQUIRED", True):
            return cls(required=False)
        issuer = env_str("AUTH_ISSUER").rstrip("/")
        clients = frozenset(filter(None, (c.strip() for c in env_str("AUTH_ALLOWED_CLIENT_IDS").split(","))))
        region = env_str("COGNITO_REGION", "") or env_str("AWS_REGION", "")
        default_alb_keys = f"https://public-keys.auth.elb.{region}.amazonaws.com" if region else ""
        return cls(
            required=True,
            issuer=issuer,
            jwks_url=env_str("AUTH_JWKS_URL", f"{issuer}/.well-known/jwks.json"),
            allowed_client_ids=clients,
            scope_prefix=env_str("AUTH_SCOPE_PREFIX", ""),
            group_permissions=parse_group_permissions(env_str("AUTH_GROUP_PERMISSIONS", "")),
            alb_arn=env_str("AUTH_ALB_ARN", ""),
            alb_key_url=env_str("AUTH_ALB_KEY_URL", default_alb_keys).rstrip("/"),
            leeway_seconds=env_int("AUTH_LEEWAY_SECONDS", 5),
            jwks_min_refresh_seconds=env_int("AUTH_JWKS_MIN_REFRESH_SECONDS", 30),
        )


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do."""

    subject: str
    client_id: str
    username: str
    permissions: frozenset[str]

    def log_name(self) -> str:
        """A short identity for log lines: user name or client id (never the token)."""
        return self.username or f"client:{self.client_id}"

    def message_headers(self) -> dict[str, str]:
        """Identity for the billing message headers."""
        return {"sub": self.subject, "client-id": self.client_id, "username": self.username}


def _fetch_json(url: str, timeout: float = 3.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - configured https URL
        return json.loads(response.read())


def _fetch_text(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - configured https URL
        return response.read().decode("ascii")


class JwksCache:
    """The pool's signing keys, fetched once, refetched when a token names an unknown key id (key rotation).

    Refetches are spaced at least ``min_refresh`` seconds apart, so tokens with made-up key ids cannot turn
    the gateway into a flood of requests to Cognito.
    """

    def __init__(self, url: str, min_refresh: float):
        self._url = url
        self._min_refresh = min_refresh
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        try:
            document = _fetch_json(self._url)
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (OSError, ValueError, jwt.PyJWKSetError) as exc:
            raise AuthError(503, f"cannot fetch the token signing keys: {type(exc).__name__}") from exc
        self._keys = {key.key_id: key for key in keys if key.key_id}
        self._fetched_at = time.monotonic()
        log.info("fetched signing keys", extra={"key_ids": sorted(self._keys)})

    def key(self, kid: str) -> jwt.PyJWK:
        """The key with ``kid``; refetch once if it is unknown and the last fetch is old enough."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._fetched_at >= self._min_refresh:
                self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise AuthError(401, "token signed with an unknown key", "invalid_token")
        return key


class AlbKeyCache:
    """ALB signing keys (PEM, ES256) by key id, from the region's public key endpoint."""

    def __init__(self, base_url: str):
        self._base_url = base_url
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def key(self, kid: str) -> str:
        """The PEM public key with ``kid`` (fetched once, then cached: ALB keys never change under a kid)."""
        if not _KID.match(kid):
            raise AuthError(401, "malformed ALB key id", "invalid_token")
        with self._lock:
            if kid not in self._keys:
                try:
                    self._keys[kid] = _fetch_text(f"{self._base_url}/{kid}")
                except OSError as exc:
                    raise AuthError(503, f"cannot fetch the ALB signing key: {type(exc).__name__}") from exc
            return self._keys[kid]


def required_permission(method: str, path: str) -> str | None:
    """The permission a route needs: reads of movies, writes of movies, or posting orders."""
    if path == "/api/movies" or path.startswith("/api/movies/"):
        return READ_MOVIES if method in _SAFE_METHODS else WRITE_MOVIES
    if path == "/api/billing":
        return WRITE_BILLING
    return None


class VerifiedTokenCache:
    """Principals of recently verified tokens, so a client reusing its token is not re-verified per request.

    Signature checks are most of the gateway's CPU per request. A token cannot change, so the result of
    verifying it stays true until it expires; entries are kept at most ``max_age`` seconds (bounding how long a
    key removed from the JWKS is still honoured) and never past the token's ``exp``. Only successful
    verifications are stored, so garbage tokens cannot fill the cache; it is bounded and least recently used
    entries go first.
    """

    def __init__(self, max_entries: int = 4096, max_age: float = 300.0):
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._max_entries = max_entries
        self._max_age = max_age
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        """The cached principal of ``token``, or None if unknown or expired."""
        now = time.time()
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return entry[1]

    def put(self, token: str, principal: Principal, expires_at: float) -> None:
        """Remember a verified token until ``expires_at`` (capped at ``max_age`` from now)."""
        with self._lock:
            self._entries[token] = (min(expires_at, time.time() + self._max_age), principal)
            self._entries.move_to_end(token)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


class Authenticator:
    """Checks one request and returns its Principal, or raises AuthError."""

    def __init__(self, settings: AuthSettings):
        self.settings = settings
        self._verified = VerifiedTokenCache()
        self._jwks = JwksCache(settings.jwks_url, settings.jwks_min_refresh_seconds) if settings.required else None
        self._alb_keys = AlbKeyCache(settings.alb_key_url) if settings.alb_arn and settings.alb_key_url else None

    def authenticate(self, request: Request) -> Principal | None:
        """The caller of ``request`` with the permission its route needs; None when auth is switched off."""
        if not self.settings.required:
            return None
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError(401, "Authorization header must be 'Bearer <access token>'", "invalid_request")
            principal = self.verify_access_token(token.strip())
        elif request.headers.get("x-amzn-oidc-data") and self._alb_keys is not None:
            principal = self.verify_alb_session(
                request.headers["x-amzn-oidc-data"], request.headers.get("x-amzn-oidc-accesstoken", "")
            )
        else:
            raise AuthError(401, "authentication required")
        needed = required_permission(request.method, request.path)
        if needed and needed not in principal.permissions:
            raise AuthError(403, f"this operation needs the {needed} permission", "insufficient_scope", needed)
        return principal

    def verify_access_token(self, token: str) -> Principal:
        """Verify a Cognito access token and derive its permissions (cached while the token is valid)."""
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        principal, expires_at = self._verify_access_token(token)
        self._verified.put(token, principal, expires_at)
        return principal

    def _verify_access_token(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError(401, "malformed token", "invalid_token") from None
        if header.get("alg") != "RS256":
            raise AuthError(401, "token must be signed with RS256", "invalid_token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.match(kid):
            raise AuthError(401, "token has no usable key id", "invalid_token")
        key = self._jwks.key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token has expired", "invalid_token") from None
        except jwt.ImmatureSignatureError:
            raise AuthError(401, "token is not valid yet", "invalid_token") from None
        except jwt.InvalidIssuerError:
            raise AuthError(401, "token was issued by another issuer", "invalid_token") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"invalid token: {exc}", "invalid_token") from None
        if claims.get("token_use") != "access":
            raise AuthError(401, "an access token is required (token_use must be 'access')", "invalid_token")
        client_id = claims.get("client_id")
        if client_id not in self.settings.allowed_client_ids:
            raise AuthError(401, "token was issued to a client that may not call this API", "invalid_token")
        principal = Principal(
            subject=str(claims["sub"]),
            client_id=str(client_id),
            username=str(claims.get("username", "")),
            permissions=self._permissions(claims),
        )
        return principal, float(claims["exp"]) + self.settings.leeway_seconds

    def _permissions(self, claims: dict) -> frozenset[str]:
        granted: set[str] = set()
        prefix = self.settings.scope_prefix
        for scope in str(claims.get("scope", "")).split():
            name = scope[len(prefix):] if prefix and scope.startswith(prefix) else (None if prefix else scope)
            if name in PERMISSIONS:
                granted.add(name)
        groups = claims.get("cognito:groups") or []
        if isinstance(groups, list):
            for group in groups:
                granted |= self.settings.group_permissions.get(str(group), frozenset())
        return frozenset(granted)

    def verify_alb_session(self, oidc_data: str, access_token: str) -> Principal:
        """Verify the ALB-signed user claims; permissions come from the forwarded Cognito access token."""
        try:
            header = jwt.get_unverified_header(oidc_data)
        except jwt.InvalidTokenError:
            raise AuthError(401, "malformed x-amzn-oidc-data", "invalid_token") from None
        if header.get("signer") != self.settings.alb_arn:
            raise AuthError(401, "x-amzn-oidc-data was not signed by this load balancer", "invalid_token")
        if header.get("alg") != "ES256":
            raise AuthError(401, "x-amzn-oidc-data must be signed with ES256", "invalid_token")
        pem = self._alb_keys.key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                oidc_data, key=pem, algorithms=["ES256"], leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"invalid x-amzn-oidc-data: {exc}", "invalid_token") from None
        if not access_token:
            raise AuthError(401, "x-amzn-oidc-accesstoken is missing", "invalid_token")
        token_principal = self.verify_access_token(access_token)
        if token_principal.subject != str(claims["sub"]):
            raise AuthError(401, "x-amzn-oidc-data and the access token name different users", "invalid_token")
        return token_principal
