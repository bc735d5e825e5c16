"""What the gateway trusts (issuer, clients, ALB, group map), read from the AUTH_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import ConfigError, env_bool, env_int, env_str
from contract import environment as env
from contract.permissions import PERMISSIONS


def parse_group_permissions(text: str) -> dict[str, frozenset[str]]:
    """Parse ``AUTH_GROUP_PERMISSIONS``: ``group=perm perm;group=perm`` (e.g. ``admins=movies.read movies.write``)."""
    mapping: dict[str, frozenset[str]] = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        group, sep, perms = entry.partition("=")
        granted = frozenset(perms.replace(",", " ").split())
        unknown = granted - PERMISSIONS.keys()
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
    leeway_seconds: int = int(env.AUTH_LEEWAY_SECONDS.default or 0)
    jwks_min_refresh_seconds: int = int(env.AUTH_JWKS_MIN_REFRESH_SECONDS.default or 0)

    @classmethod
    def from_env(cls) -> AuthSettings:
        """AUTH_REQUIRED (default true) and, when required, AUTH_ISSUER, AUTH_ALLOWED_CLIENT_IDS and friends."""
        if not env_bool(env.AUTH_REQUIRED):
            return cls(required=False)
        issuer = env_str(env.AUTH_ISSUER).rstrip("/")
        clients = frozenset(filter(None, (c.strip() for c in env_str(env.AUTH_ALLOWED_CLIENT_IDS).split(","))))
        region = env_str(env.COGNITO_REGION) or env_str(env.AWS_REGION)
        default_alb_keys = f"https://public-keys.auth.elb.{region}.amazonaws.com" if region else ""
        return cls(
            required=True,
            issuer=issuer,
            jwks_url=env_str(env.AUTH_JWKS_URL, f"{issuer}/.well-known/jwks.json"),
            allowed_client_ids=clients,
            scope_prefix=env_str(env.AUTH_SCOPE_PREFIX),
            group_permissions=parse_group_permissions(env_str(env.AUTH_GROUP_PERMISSIONS)),
            alb_arn=env_str(env.AUTH_ALB_ARN),
            alb_key_url=env_str(env.AUTH_ALB_KEY_URL, default_alb_keys).rstrip("/"),
            leeway_seconds=env_int(env.AUTH_LEEWAY_SECONDS),
            jwks_min_refresh_seconds=env_int(env.AUTH_JWKS_MIN_REFRESH_SECONDS),
        )
