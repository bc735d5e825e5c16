"""Verifying a request's credentials: a Cognito access token, or the ALB's signed session plus its token."""

from __future__ import annotations

import jwt
from flask import Request

from contract.permissions import PERMISSIONS
from gateway.auth.keys import KID, AlbKeyCache, JwksCache, VerifiedTokenCache
from gateway.auth.principal import AuthError, Principal
from gateway.auth.settings import AuthSettings


class Authenticator:
    """Checks one request and returns its Principal, or raises AuthError."""

    def __init__(self, settings: AuthSettings):
        self.settings = settings
        self._verified = VerifiedTokenCache()
        self._jwks = JwksCache(settings.jwks_url, settings.jwks_min_refresh_seconds) if settings.required else None
        self._alb_keys = AlbKeyCache(settings.alb_key_url) if settings.alb_arn and settings.alb_key_url else None

    def authenticate(self, request: Request, needed: str | None) -> Principal | None:
        """The caller of ``request``, who must hold ``needed`` (the permission its route declares, see
        ``gateway.access``); None when auth is switched off."""
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
        if not isinstance(kid, str) or not KID.match(kid):
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
