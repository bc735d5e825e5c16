"""Key material and verified tokens, cached: the pool's JWKS, the ALB's signing keys, recent verifications."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request
from collections import OrderedDict

import jwt

from gateway.auth.principal import AuthError, Principal

# The name the gateway's authentication has always logged under.
log = logging.getLogger("gateway.auth")

#: A key id as Cognito and the ALB write them; anything else is refused before any lookup or fetch.
KID = re.compile(r"^[A-Za-z0-9._=-]{1,128}$")


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
        if not KID.match(kid):
            raise AuthError(401, "malformed ALB key id", "invalid_token")
        with self._lock:
            if kid not in self._keys:
                try:
                    self._keys[kid] = _fetch_text(f"{self._base_url}/{kid}")
                except OSError as exc:
                    raise AuthError(503, f"cannot fetch the ALB signing key: {type(exc).__name__}") from exc
            return self._keys[kid]


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
