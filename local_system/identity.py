"""The local identity provider: an emulated Amazon Cognito (moto in server mode) for ``make up`` and tests.

moto serves the cognito-idp API (``InitiateAuth`` with USER_PASSWORD_AUTH, user pools, groups, clients) and
each pool's JWKS at ``/<pool id>/.well-known/jwks.json``. Its access tokens keep Cognito's issuer form
(``https://cognito-idp.<region>.amazonaws.com/<pool id>``) and carry ``cognito:groups`` but no custom scopes,
so locally permissions come from groups. The gateway is pointed at it exactly as it is pointed at Cognito on
AWS, except that the JWKS URL is the emulator's.

This module speaks the cognito-idp JSON protocol with the standard library (moto ignores request
signatures), so ``make up`` works before the virtualenv has boto3. moto itself runs from the virtualenv.

moto's token signing key ships inside moto and is public: these tokens mean nothing outside this machine.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from local_system.processes import LocalSystemError, is_alive, port_open, read_pid, spawn, tail, terminate, wait_for
from local_system.profiles import REPO_ROOT, Profile

REGION = "eu-west-1"
#: Cognito groups of the emulated pool and the permissions the gateway maps them to (AUTH_GROUP_PERMISSIONS).
GROUP_PERMISSIONS = {
    "admins": "movies.read movies.write billing.write",
    "editors": "movies.read movies.write",
    "viewers": "movies.read",
}
DEMO_USER = "demo"
START_TIMEOUT = 60.0


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
        #: True when the last ``provision()`` had to create a pool (anything trusting the old one is stale).
        self.provisioned_new_pool = False

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
            if port_open(self.port):
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
        pid = self.pid()
        if pid is None:
            return False
        terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return True

    # -- the pool ------------------------------------------------------------------------------------------
    def _call(self, action: str, payload: dict) -> dict:
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
            raise LocalSystemError(f"Cognito emulator refused {action}: {exc.code} {detail}") from None

    def pool(self) -> PoolInfo | None:
        """The provisioned pool, if the saved one still exists in the running emulator."""
        if not self.state_file.exists():
            return None
        info = PoolInfo(**json.loads(self.state_file.read_text()))
        try:
            self._call("DescribeUserPool", {"UserPoolId": info.pool_id})
        except LocalSystemError:
            return None  # the emulator restarted: its pools are gone
        return info

    def provision(self) -> PoolInfo:
        """Create the pool, groups, app client and demo user unless the saved pool exists; return it."""
        existing = self.pool()
        self.provisioned_new_pool = existing is None
        if existing is not None:
            return existing
        pool_id = self._call(
            "CreateUserPool",
            {
                "PoolName": f"microservices-{self.profile.name}",
                "Policies": {
                    "PasswordPolicy": {
                        "MinimumLength": 8,
                        "RequireUppercase": True,
                        "RequireLowercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": True,
                    }
                },
            },
        )["UserPool"]["Id"]
        client_id = self._call(
            "CreateUserPoolClient",
            {
                "UserPoolId": pool_id,
                "ClientName": "local-cli",
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            },
        )["UserPoolClient"]["ClientId"]
        for group in GROUP_PERMISSIONS:
            self._call("CreateGroup", {"UserPoolId": pool_id, "GroupName": group})
        # Meets the pool's policy: upper, lower, digit, symbol, 8+ characters.
        password = f"Local-{secrets.token_urlsafe(12)}-9a"
        self._call("AdminCreateUser", {"UserPoolId": pool_id, "Username": DEMO_USER, "MessageAction": "SUPPRESS"})
        self._call(
            "AdminSetUserPassword",
            {"UserPoolId": pool_id, "Username": DEMO_USER, "Password": password, "Permanent": True},
        )
        self._call("AdminAddUserToGroup", {"UserPoolId": pool_id, "Username": DEMO_USER, "GroupName": "admins"})
        info = PoolInfo(pool_id=pool_id, client_id=client_id, username=DEMO_USER, password=password)
        self.state_file.unlink(missing_ok=True)
        fd = _private_file(self.state_file)
        with open(fd, "w") as handle:
            json.dump(asdict(info), handle)
        return info

    def add_user(self, username: str, password: str, groups: list[str]) -> None:
        """Create another user in the pool (tests use this for users with fewer permissions)."""
        info = self.provision()
        self._call("AdminCreateUser", {"UserPoolId": info.pool_id, "Username": username, "MessageAction": "SUPPRESS"})
        self._call(
            "AdminSetUserPassword",
            {"UserPoolId": info.pool_id, "Username": username, "Password": password, "Permanent": True},
        )
        for group in groups:
            self._call("AdminAddUserToGroup", {"UserPoolId": info.pool_id, "Username": username, "GroupName": group})

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """A fresh access token (USER_PASSWORD_AUTH) for the demo user, or for the given user."""
        info = self.pool()
        if info is None:
            raise LocalSystemError("the Cognito emulator is not running or not provisioned; run: make up")
        result = self._call(
            "InitiateAuth",
            {
                "ClientId": info.client_id,
                "AuthFlow": "USER_PASSWORD_AUTH",
                "AuthParameters": {"USERNAME": username or info.username, "PASSWORD": password or info.password},
            },
        )
        return result["AuthenticationResult"]["AccessToken"]

    def gateway_env(self) -> dict[str, str]:
        """The gateway's AUTH_* settings for this emulator (the same names the CDK app sets on AWS)."""
        info = self.pool()
        if info is None:
            raise LocalSystemError("the Cognito emulator is not provisioned; start it first")
        return {
            "AUTH_REQUIRED": "true",
            "COGNITO_REGION": REGION,
            "COGNITO_USER_POOL_ID": info.pool_id,
            "AUTH_ISSUER": info.issuer,
            "AUTH_JWKS_URL": f"{self.url}/{info.pool_id}/.well-known/jwks.json",
            "AUTH_ALLOWED_CLIENT_IDS": info.client_id,
            "AUTH_GROUP_PERMISSIONS": ";".join(f"{g}={p}" for g, p in GROUP_PERMISSIONS.items()),
        }


def _private_file(path: Path) -> int:
    """Open ``path`` for writing with mode 0600 from the first moment."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _moto_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # Dummy credentials: moto must never find (or use) real ones from the environment.
    env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION=REGION)  # noqa: S106
    return env
