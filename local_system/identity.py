"""The local identity provider: an emulated Amazon Cognito (moto in server mode) for ``make up`` and tests.

moto serves the cognito-idp API (``InitiateAuth`` with USER_PASSWORD_AUTH, user pools, groups, clients) and
each pool's JWKS at ``/<pool id>/.well-known/jwks.json``. Its access tokens keep Cognito's issuer form
(``https://cognito-idp.<region>.amazonaws.com/<pool id>``) and carry ``cognito:groups`` but no custom scopes,
so locally permissions come from groups. The gateway is pointed at it exactly as it is pointed at Cognito on
AWS, except that the JWKS URL is the emulator's.

This module speaks the cognito-idp JSON protocol with the standard library (moto ignores request
signatures), so ``make up`` works before the virtualenv has boto3. moto itself runs from the virtualenv.

moto's token signing key ships inside moto and is public: these tokens mean nothing outside this machine.

The same provisioning serves Docker Compose (docker-compose.yml, services ``identity`` and ``identity-init``),
through a small command line that needs nothing but Python (it runs in the moto image)::

    python -m local_system.identity provision --url http://identity:5000 --pool-name microservices-compose
    python -m local_system.identity token --url http://identity:5000 --pool-name microservices-compose

Both read the user's password from ``IDENTITY_DEMO_PASSWORD`` (never from the command line: ``ps`` shows it).
With moto's ``MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY=HASH`` and ``..._CLIENT_ID_STRATEGY=HASH`` the pool id
is a hash of region, pool name and the CreateUserPool settings, and the client id a hash of pool id and
client settings: the same name always gives the same ids, so the compose file can name them
(tests/integration/test_compose_identity.py proves it). Change :func:`user_pool_settings`,
:func:`app_client_settings` or the pool name and the ids change with them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from local_system.processes import (
    LocalSystemError,
    is_alive,
    port_open,
    port_released,
    read_pid,
    spawn,
    stop_recorded,
    tail,
    wait_for,
)
from local_system.profiles import REPO_ROOT, Profile

REGION = "eu-west-1"
#: Cognito groups of the emulated pool and the permissions the gateway maps them to (AUTH_GROUP_PERMISSIONS).
GROUP_PERMISSIONS = {
    "admins": "movies.read movies.write billing.write",
    "editors": "movies.read movies.write",
    "viewers": "movies.read",
}
DEMO_USER = "demo"
#: The app client every pool gets (USER_PASSWORD_AUTH: tokens from a user name and password, no browser).
CLIENT_NAME = "local-cli"
START_TIMEOUT = 60.0
#: Pool name Docker Compose provisions; its hashed ids are written into docker-compose.yml.
COMPOSE_POOL_NAME = "microservices-compose"
#: Where the command line reads the user's password from.
PASSWORD_ENV = "IDENTITY_DEMO_PASSWORD"  # noqa: S105 - a variable name, not a password


@dataclass(frozen=True)
class PoolInfo:
    """What was provisioned in the emulator (saved to ``identity.json``, mode 0600: it holds the password)."""

    pool_id: str
    client_id: str
    username: str
    password: str

    @property
    def issuer(self) -> str:
        """The issuer exactly as Cognito writes it into tokens."""
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"


class CognitoError(LocalSystemError):
    """The emulator refused a call; ``code`` is the cognito-idp error type (e.g. ``GroupExistsException``)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class CognitoApi:
    """The cognito-idp JSON protocol over urllib, for the emulator at ``url`` (moto ignores signatures)."""

    def __init__(self, url: str, hint: str = "run: make up"):
        self.url = url.rstrip("/")
        self.hint = hint

    def call(self, action: str, payload: dict) -> dict:
        """One cognito-idp action; raises CognitoError when refused, LocalSystemError when unreachable."""
        request = urllib.request.Request(  # noqa: S310 - the local emulator's http:// URL
            f"{self.url}/",
            data=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"AWSCognitoIdentityProviderService.{action}",
                # moto reads the region from the credential scope and does not check the signature.
                "Authorization": f"AWS4-HMAC-SHA256 Credential=local/20260101/{REGION}/cognito-idp/aws4_request, "
                "SignedHeaders=host, Signature=local",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local emulator
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            try:
                code = str(json.loads(detail).get("__type", ""))
            except (ValueError, AttributeError):
                code = ""
            raise CognitoError(f"Cognito emulator refused {action}: {exc.code} {detail}", code) from None
        except OSError as exc:
            raise LocalSystemError(f"Cognito emulator at {self.url} does not answer ({exc}); {self.hint}") from None

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

    Idempotent: what exists is kept (a pool of that name, a client called CLIENT_NAME, the groups, the user);
    the user's password is set to ``password`` every time and the user is in ``admins``. ``make up`` and
    Compose's ``identity-init`` both provision through this function.
    """
    pool_id = api.find_pool(pool_name) or api.call("CreateUserPool", user_pool_settings(pool_name))["UserPool"]["Id"]
    client_id = (
        api.find_client(pool_id, CLIENT_NAME)
        or api.call("CreateUserPoolClient", app_client_settings(pool_id))["UserPoolClient"]["ClientId"]
    )
    for group in GROUP_PERMISSIONS:
        _ignore_existing(api, "CreateGroup", {"UserPoolId": pool_id, "GroupName": group}, "GroupExistsException")
    ensure_user(api, pool_id, username, password, ["admins"])
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
        "AUTH_REQUIRED": "true",
        "COGNITO_REGION": REGION,
        "COGNITO_USER_POOL_ID": info.pool_id,
        "AUTH_ISSUER": info.issuer,
        "AUTH_JWKS_URL": f"{emulator_url.rstrip('/')}/{info.pool_id}/.well-known/jwks.json",
        "AUTH_ALLOWED_CLIENT_IDS": info.client_id,
        "AUTH_GROUP_PERMISSIONS": ";".join(f"{g}={p}" for g, p in GROUP_PERMISSIONS.items()),
    }


class IdentityEmulator:
    """Start, stop and provision the profile's emulated Cognito."""

    name = "cognito"

    def __init__(self, profile: Profile):
        self.profile = profile
        self.port = profile.cognito_port
        self.home = profile.state_dir / "cognito"
        self.pid_file = self.home / "moto.pid"
        self.log_file = self.home / "moto.log"
        self.state_file = self.home / "identity.json"
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = CognitoApi(self.url)

    # -- process -------------------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of the emulator, or None when it does not run."""
        pid = read_pid(self.pid_file)
        return pid if is_alive(pid, "moto") else None

    def is_running(self) -> bool:
        """True when the emulator runs and answers."""
        return self.pid() is not None and port_open(self.port)

    def start(self) -> None:
        """Start moto (if not running), then make sure the pool, groups, client and demo user exist."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.pid() is None:
            if not port_released(self.port):
                raise LocalSystemError(f"port {self.port} is taken by another program; cannot start the emulator")
            moto = REPO_ROOT / ".venv" / "bin" / "moto_server"
            if not moto.exists():
                raise LocalSystemError("moto is not installed in .venv; run: make venv")
            spawn(
                [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                self.log_file,
                _moto_env(),
                self.home,
                self.pid_file,
            )
            if not wait_for(lambda: port_open(self.port), START_TIMEOUT):
                raise LocalSystemError(
                    f"the Cognito emulator did not start; see {self.log_file}:\n{tail(self.log_file, 15)}"
                )
        self.provision()

    def stop(self, timeout: float = 15) -> bool:
        """Stop the emulator (its in-memory pools go with it); True when it was running."""
        return stop_recorded(self.pid(), self.pid_file, timeout)

    # -- the pool ------------------------------------------------------------------------------------------
    def saved_pool(self) -> PoolInfo | None:
        """The pool last provisioned, as saved (without asking the emulator whether it still has it)."""
        if not self.state_file.exists():
            return None
        return PoolInfo(**json.loads(self.state_file.read_text()))

    def pool(self) -> PoolInfo | None:
        """The provisioned pool, if the saved one still exists in the running emulator."""
        info = self.saved_pool()
        if info is None:
            return None
        try:
            self.api.call("DescribeUserPool", {"UserPoolId": info.pool_id})
        except LocalSystemError:
            return None  # the emulator restarted: its pools are gone
        return info

    def provision(self) -> PoolInfo:
        """Create the pool, groups, app client and demo user unless the saved pool exists; return it.

        The emulator derives pool and client ids from their names (HASH strategy, see ``_moto_env``) and the
        saved password is reused, so a pool re-created after an emulator restart is the same pool to everyone
        who trusted the old one: the running gateway's settings stay valid.
        """
        existing = self.pool()
        if existing is not None:
            return existing
        saved = self.saved_pool()
        # Meets the pool's policy: upper, lower, digit, symbol, 8+ characters.
        password = saved.password if saved else f"Local-{secrets.token_urlsafe(12)}-9a"
        info = provision_pool(self.api, f"microservices-{self.profile.name}", password)
        self.state_file.unlink(missing_ok=True)
        fd = _private_file(self.state_file)
        with open(fd, "w") as handle:
            json.dump(asdict(info), handle)
        return info

    def add_user(self, username: str, password: str, groups: list[str]) -> None:
        """Create another user in the pool (tests use this for users with fewer permissions)."""
        ensure_user(self.api, self.provision().pool_id, username, password, groups)

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """A fresh access token (USER_PASSWORD_AUTH) for the demo user, or for the given user."""
        info = self.pool()
        if info is None:
            raise LocalSystemError("the Cognito emulator is not running or not provisioned; run: make up")
        return access_token(self.api, info.client_id, username or info.username, password or info.password)

    def gateway_env(self) -> dict[str, str]:
        """The gateway's AUTH_* settings for this emulator (the same names the CDK app sets on AWS).

        Empty before the first provisioning: the gateway then refuses to start (AUTH_ISSUER is required),
        it never runs without authentication by accident.
        """
        info = self.saved_pool()
        if info is None:
            return {}
        return gateway_settings(info, self.url)


def _private_file(path: Path) -> int:
    """Open ``path`` for writing with mode 0600 from the first moment."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _moto_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # Dummy credentials: moto must never find (or use) real ones from the environment.
    env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION=REGION)  # noqa: S106
    # Ids derived from names, as under Docker Compose: a restarted emulator re-creates the same pool and client.
    env.update(MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY="HASH", MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY="HASH")
    return env


# -- command line (Docker Compose's identity-init; needs nothing but Python) -------------------------------------
def _password() -> str:
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise LocalSystemError(f"set {PASSWORD_ENV} to the user's password")
    return password


def main(argv: list[str] | None = None) -> int:
    """``provision``: create (or keep) the pool and print the gateway's AUTH_* settings as JSON;
    ``token``: print a fresh access token of the user. The password comes from IDENTITY_DEMO_PASSWORD."""
    parser = argparse.ArgumentParser(prog="python -m local_system.identity", description=main.__doc__)
    parser.add_argument("command", choices=("provision", "token"))
    parser.add_argument(
        "--url",
        default=os.environ.get("IDENTITY_URL", "http://127.0.0.1:5000"),
        help="the emulator (default: $IDENTITY_URL or http://127.0.0.1:5000)",
    )
    parser.add_argument(
        "--pool-name",
        default=os.environ.get("IDENTITY_POOL_NAME", COMPOSE_POOL_NAME),
        help=f"user pool name (default: $IDENTITY_POOL_NAME or {COMPOSE_POOL_NAME})",
    )
    parser.add_argument("--username", default=DEMO_USER, help=f"user (default: {DEMO_USER})")
    parser.add_argument(
        "--jwks-base-url",
        help="the emulator as the gateway reaches it, for the printed AUTH_JWKS_URL (default: --url)",
    )
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the emulator (default: 30)")
    args = parser.parse_args(argv)
    api = CognitoApi(args.url, hint="is the identity service up?")
    try:
        password = _password()
        api.wait(args.wait)
        if args.command == "provision":
            info = provision_pool(api, args.pool_name, password, args.username)
            print(json.dumps(gateway_settings(info, args.jwks_base_url or args.url), indent=2))
        else:
            pool_id = api.find_pool(args.pool_name)
            client_id = api.find_client(pool_id, CLIENT_NAME) if pool_id else None
            if not client_id:
                raise LocalSystemError(f"no user pool {args.pool_name!r} with client {CLIENT_NAME!r}; provision first")
            print(access_token(api, client_id, args.username, password))
    except LocalSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
