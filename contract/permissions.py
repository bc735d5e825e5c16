"""API permissions, the OAuth resource server that carries them as scopes, and the groups of people.

Machine clients get permissions as OAuth scopes (``movies-api/movies.read``); people get them through their
Cognito group, which the gateway maps with ``AUTH_GROUP_PERMISSIONS`` (rendered from ``GROUP_PERMISSIONS``).
"""

from __future__ import annotations

READ_MOVIES = "movies.read"
WRITE_MOVIES = "movies.write"
WRITE_BILLING = "billing.write"
READ_BILLING = "billing.read"

#: Every permission with what it allows (also the scope descriptions of the Cognito resource server).
PERMISSIONS: dict[str, str] = {
    READ_MOVIES: "Read the movie inventory",
    WRITE_MOVIES: "Change the movie inventory",
    WRITE_BILLING: "Submit billing orders and follow your own",
    READ_BILLING: "Read every principal's billing orders",
}

#: The Cognito resource server; Cognito prefixes its custom scopes with this id and a slash.
API_IDENTIFIER = "movies-api"
SCOPE_PREFIX = f"{API_IDENTIFIER}/"

#: Cognito groups of people and the permissions the gateway grants their members.
GROUP_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "admins": (READ_MOVIES, WRITE_MOVIES, WRITE_BILLING, READ_BILLING),
    "editors": (READ_MOVIES, WRITE_MOVIES),
    "viewers": (READ_MOVIES,),
    # People who place orders and follow their own (GET /api/orders*), and nothing else.
    "customers": (WRITE_BILLING,),
}

#: The group of the local demo user (``make token``): every permission.
DEMO_GROUP = "admins"


def group_permissions_setting(groups: dict[str, tuple[str, ...]] | None = None) -> str:
    """``GROUP_PERMISSIONS`` as the gateway's ``AUTH_GROUP_PERMISSIONS`` value: ``group=perm perm;group=...``."""
    groups = GROUP_PERMISSIONS if groups is None else groups
    return ";".join(f"{group}={' '.join(granted)}" for group, granted in groups.items())
