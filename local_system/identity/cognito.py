"""The emulated Cognito's API, spoken with the standard library, and the provisioning of one user pool.

This module speaks the cognito-idp JSON protocol over urllib (moto ignores request signatures), so
``make up`` works before the virtualenv has boto3 and Compose's ``identity-init`` runs it in the moto image.

With moto's ``MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY=HASH`` and ``..._CLIENT_ID_STRATEGY=HASH`` the pool id is
a hash of region, pool name and the CreateUserPool settings, and the client id a hash of pool id and client
settings: the same name always gives the same ids, so the compose file can name them
(tests/integration/test_compose_identity.py proves it). Change :func:`user_pool_settings`,
:func:`app_client_settings` or the pool name and the ids change with them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from contract import environment as env
from contract.permissions import DEMO_GROUP, GROUP_PERMISSIONS, group_permissions_setting
from local_system import emulator_api
from local_system.emulator_api import REGION, EmulatorRefused
from local_system.processes import LocalSystemError

DEMO_USER = "demo"
#: The app client every pool gets (USER_PASSWORD_AUTH: tokens from a user name and password, no browser).
CLIENT_NAME = "local-cli"


@dataclass(frozen=True)
class PoolInfo:
    """What was provisioned in the emulator (saved to ``identity.json``, mode 0600: it holds the password)."""

    pool_id: str
    client_id: str
    username: str
    password: str
    web_client_id: str = ""
    """The web front end's app client (``WEB_CLIENT_NAME``); "" in files saved before it existed."""

    @property
    def issuer(self) -> str:
        """The issuer exactly as Cognito writes it into tokens."""
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"


class CognitoError(EmulatorRefused):
    """The emulator refused a call; ``code`` is the cognito-idp error type (e.g. ``GroupExistsException``)."""


class CognitoApi:
    """The cognito-idp JSON protocol over urllib, for the emulator at ``url`` (moto ignores signatures)."""

    def __init__(self, url: str, hint: str = "run: make up"):
        self.url = url.rstrip("/")
        self.hint = hint

    def call(self, action: str, payload: dict) -> dict:
        """One cognito-idp action; raises CognitoError when refused, LocalSystemError when unreachable."""
        target = f"AWSCognitoIdentityProviderService.{action}"
        try:
            return emulator_api.call(self.url, target, "cognito-idp", payload, hint=self.hint)
        except EmulatorRefused as exc:
            raise CognitoError(f"Cognito emulator refused {action}: {exc}", exc.code) from None

    def wait(self, timeout: float) -> None:
        """Wait until the emulator answers cognito-idp calls (at most ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("ListUserPools", {"MaxResults": 1})
                return
            except CognitoError:
                return  # it answers
            except LocalSystemError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def find_pool(self, name: str) -> str | None:
        """Id of the user pool called ``name`` (the first one), or None."""
        return self._find("ListUserPools", {}, "UserPools", "Name", "Id", name)

    def find_client(self, pool_id: str, name: str) -> str | None:
        """Id of the pool's app client called ``name`` (the first one), or None."""
        payload = {"UserPoolId": pool_id}
        return self._find("ListUserPoolClients", payload, "UserPoolClients", "ClientName", "ClientId", name)

    def _find(self, action: str, payload: dict, items: str, name_key: str, id_key: str, name: str) -> str | None:
        """Page through a List* action; the ``id_key`` of the first item whose ``name_key`` is ``name``."""
        token = None
        while True:
            page = self.call(action, {**payload, "MaxResults": 60, **({"NextToken": token} if token else {})})
            for item in page.get(items, []):
                if item.get(name_key) == name:
                    return item[id_key]
            token = page.get("NextToken")
            if not token:
                return None


def user_pool_settings(pool_name: str) -> dict:
    """The CreateUserPool request. Under moto's HASH strategy the pool id is a hash of exactly this (and the
    region): the ids in docker-compose.yml depend on every key, value and their order."""
    return {
        "PoolName": pool_name,
        "Policies": {
            "PasswordPolicy": {
                "MinimumLength": 8,
                "RequireUppercase": True,
                "RequireLowercase": True,
                "RequireNumbers": True,
                "RequireSymbols": True,
            }
        },
    }


def app_client_settings(pool_id: str) -> dict:
    """The CreateUserPoolClient request (under HASH, the client id is a hash of the pool id and this)."""
    return {
        "UserPoolId": pool_id,
        "ClientName": CLIENT_NAME,
        "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    }


def _ignore_existing(api: CognitoApi, action: str, payload: dict, exists: str) -> None:
    try:
        api.call(action, payload)
    except CognitoError as exc:
        if exc.code != exists:
            raise


def provision_pool(api: CognitoApi, pool_name: str, password: str, username: str = DEMO_USER) -> PoolInfo:
    """Make sure the pool ``pool_name`` with its groups, app client and user exists; return it.

    Idempotent: what exists is kept (a pool of that name, a client called CLIENT_NAME, the contract's groups,
    the user); the user's password is set to ``password`` every time and the user is in the contract's demo
    group. ``make up`` and Compose's ``identity-init`` both provision through this function.
    """
    pool_id = api.find_pool(pool_name) or api.call("CreateUserPool", user_pool_settings(pool_name))["UserPool"]["Id"]
    client_id = (
        api.find_client(pool_id, CLIENT_NAME)
        or api.call("CreateUserPoolClient", app_client_settings(pool_id))["UserPoolClient"]["ClientId"]
    )
    for group in GROUP_PERMISSIONS:
        _ignore_existing(api, "CreateGroup", {"UserPoolId": pool_id, "GroupName": group}, "GroupExistsException")
    ensure_user(api, pool_id, username, password, [DEMO_GROUP])
    return PoolInfo(pool_id=pool_id, client_id=client_id, username=username, password=password)


def ensure_user(api: CognitoApi, pool_id: str, username: str, password: str, groups: list[str]) -> None:
    """The user exists (kept if it does), has ``password`` (permanent) and is in ``groups``."""
    _ignore_existing(
        api,
        "AdminCreateUser",
        {"UserPoolId": pool_id, "Username": username, "MessageAction": "SUPPRESS"},
        "UsernameExistsException",
    )
    api.call(
        "AdminSetUserPassword",
        {"UserPoolId": pool_id, "Username": username, "Password": password, "Permanent": True},
    )
    for group in groups:
        api.call("AdminAddUserToGroup", {"UserPoolId": pool_id, "Username": username, "GroupName": group})


def access_token(api: CognitoApi, client_id: str, username: str, password: str) -> str:
    """A fresh access token (USER_PASSWORD_AUTH) for ``username``."""
    result = api.call(
        "InitiateAuth",
        {
            "ClientId": client_id,
            "AuthFlow": "USER_PASSWORD_AUTH",
            "AuthParameters": {"USERNAME": username, "PASSWORD": password},
        },
    )
    return result["AuthenticationResult"]["AccessToken"]


def gateway_settings(info: PoolInfo, emulator_url: str) -> dict[str, str]:
    """The gateway's AUTH_* settings for a pool served by the emulator at ``emulator_url`` (as the gateway
    reaches it): the same names the CDK app sets on AWS, except that the JWKS URL is the emulator's."""
    return {
        env.AUTH_REQUIRED.name: "true",
        env.COGNITO_REGION.name: REGION,
        env.AUTH_ISSUER.name: info.issuer,
        env.AUTH_JWKS_URL.name: f"{emulator_url.rstrip('/')}/{info.pool_id}/.well-known/jwks.json",
        env.AUTH_ALLOWED_CLIENT_IDS.name: ",".join(filter(None, (info.client_id, info.web_client_id))),
        env.AUTH_GROUP_PERMISSIONS.name: group_permissions_setting(),
    }
