"""Authentication and authorization of ``/api/*`` in the gateway.

On AWS the ALB validates the Cognito token first; the gateway checks again (defence in depth), and it is the
only check locally and in the HTTP-only trial deployment. All cryptography is PyJWT's; this package decides
which keys, claims and permissions count.

A caller is accepted with either
* ``Authorization: Bearer <Cognito access token>``: RS256 signature against the pool's JWKS, issuer, expiry,
  ``token_use=access``, an allowed ``client_id``; permissions from OAuth scopes (machine clients) and from
  ``cognito:groups`` mapped by configuration (human users), or
* the ALB's ``x-amzn-oidc-data`` (browser sessions after the ALB's Cognito login): ES256, signed by the
  expected ALB (``signer`` header) with the ALB key of the region; permissions then come from the Cognito
  access token the ALB forwards in ``x-amzn-oidc-accesstoken``, verified like a bearer token.

Modules: :mod:`~gateway.auth.settings` (what is trusted), :mod:`~gateway.auth.principal` (the caller and the
refusal), :mod:`~gateway.auth.keys` (key and token caches), :mod:`~gateway.auth.verify` (the checks). Which
permission a route needs is declared on the route (:mod:`gateway.access`).
"""

from gateway.auth.keys import AlbKeyCache, JwksCache, VerifiedTokenCache
from gateway.auth.principal import AuthError, Principal
from gateway.auth.settings import AuthSettings, parse_group_permissions
from gateway.auth.verify import Authenticator

__all__ = [
    "AlbKeyCache",
    "AuthError",
    "AuthSettings",
    "Authenticator",
    "JwksCache",
    "Principal",
    "VerifiedTokenCache",
    "parse_group_permissions",
]
