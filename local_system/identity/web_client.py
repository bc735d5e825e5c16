"""The web front end's app client in the emulated pool: public (no secret), authorization code + PKCE.

On AWS the SPA signs in through Cognito's managed login; moto has none, so the local web edge emulates it
(``local_system.identity.managed_login``) and trades the user's password for tokens with ``InitiateAuth``
(``USER_PASSWORD_AUTH``, enabled on this client for the emulation only). The callback and logout URLs are
registered on the client, as on AWS, and the emulated login refuses any other ``redirect_uri``.
"""

from __future__ import annotations

from local_system.identity.cognito import CognitoApi

#: The SPA client's name (the same on AWS).
WEB_CLIENT_NAME = "movies-web"
#: What the SPA asks for (openid: an id token; profile/email: the user's name in it).
WEB_SCOPES = ("openid", "email", "profile")


def web_origin(port: int) -> str:
    """The local web origin of the site on ``port`` (also the callback and logout URL, with a slash)."""
    return f"http://127.0.0.1:{port}"


def web_client_settings(pool_id: str, site_port: int) -> dict:
    """The CreateUserPoolClient request of the SPA client (under HASH, its id is a hash of this)."""
    callback = f"{web_origin(site_port)}/"
    return {
        "UserPoolId": pool_id,
        "ClientName": WEB_CLIENT_NAME,
        "GenerateSecret": False,
        # USER_PASSWORD_AUTH: how the emulated managed login gets the tokens (the AWS client has SRP only).
        "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        "SupportedIdentityProviders": ["COGNITO"],
        "CallbackURLs": [callback],
        "LogoutURLs": [callback],
        "AllowedOAuthFlows": ["code"],
        "AllowedOAuthScopes": list(WEB_SCOPES),
        "AllowedOAuthFlowsUserPoolClient": True,
    }


def ensure_web_client(api: CognitoApi, pool_id: str, site_port: int) -> str:
    """Id of the SPA client of ``pool_id``, created when missing (idempotent)."""
    existing = api.find_client(pool_id, WEB_CLIENT_NAME)
    if existing:
        return existing
    return api.call("CreateUserPoolClient", web_client_settings(pool_id, site_port))["UserPoolClient"]["ClientId"]


def describe_client(api: CognitoApi, pool_id: str, client_id: str) -> dict:
    """The client's settings (CallbackURLs, AllowedOAuthFlows, ...); CognitoError when it does not exist."""
    return api.call("DescribeUserPoolClient", {"UserPoolId": pool_id, "ClientId": client_id})["UserPoolClient"]
