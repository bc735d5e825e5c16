"""The local system's Secrets Manager: one secret per credential in the emulator (moto) it already runs.

Services get ``DATABASE_SECRET_ID`` / ``RABBITMQ_SECRET_ID`` and read them with boto3 exactly as on AWS. This
module speaks the secretsmanager JSON protocol over urllib (moto ignores request signatures), so the local
system stays standard-library only; its method names and keyword arguments are boto3's, so the broker's
rotation handler (functions/broker_rotation) runs on it unchanged. The emulator keeps secrets in memory:
:func:`provision` re-creates them from ``credentials.env`` after a restart.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from local_system.credentials import BROKER, CREDENTIAL_NAMES, Credentials, Login
from local_system.identity.cognito import REGION
from local_system.processes import LocalSystemError
from local_system.profiles import Profile

#: The dummy keys the services hand to boto3 (moto checks nothing; real keys must never reach it).
DUMMY_KEY = "local"


def secret_name(profile: Profile, name: str) -> str:
    """The secret of credential ``name`` (``inventory``, ``billing``, ``rabbitmq``) in ``profile``."""
    return f"local-{profile.name}/{name}"


class SecretsError(LocalSystemError):
    """A refused call; ``response`` is shaped like botocore's ClientError (``["Error"]["Code"]``)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.response = {"Error": {"Code": code, "Message": message}}


class SecretsApi:
    """The secretsmanager actions the local system and the rotation handler use, against the emulator."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - the local emulator's http:// URL
            f"{self.url}/",
            data=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"secretsmanager.{action}",
                "Authorization": f"AWS4-HMAC-SHA256 Credential={DUMMY_KEY}/20260101/{REGION}/secretsmanager/"
                "aws4_request, SignedHeaders=host, Signature=local",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local emulator
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read() or b"{}")
            except ValueError:
                error = {}
            code = str(error.get("__type", "")).rsplit("#", 1)[-1] or f"HTTP{exc.code}"
            raise SecretsError(f"secretsmanager {action}: {code}: {error.get('message', '')}", code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise LocalSystemError(f"the Secrets Manager emulator at {self.url} is unreachable: {exc}") from exc

    # boto3's names and keyword arguments (see the module docstring).
    def create_secret(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("CreateSecret", kwargs)

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("GetSecretValue", kwargs)

    def put_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("PutSecretValue", kwargs)

    def describe_secret(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("DescribeSecret", kwargs)

    def update_secret_version_stage(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("UpdateSecretVersionStage", kwargs)

    def login(self, secret_id: str, stage: str = "AWSCURRENT") -> Login | None:
        """The login in the secret's version at ``stage``; None when the secret or the stage does not exist."""
        try:
            value = json.loads(self.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])
        except SecretsError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return Login(value["username"], value["password"])


def secret_value(login: Login, name: str, profile: Profile) -> str:
    """The secret's JSON: username and password (RDS's secrets add engine, host and port, so do we)."""
    value: dict[str, object] = {"username": login.user, "password": login.password}
    if name == BROKER:
        value.update(engine="rabbitmq", host="127.0.0.1", port=profile.amqp_port)
    else:
        value.update(engine="postgres", host="127.0.0.1", port=profile.postgres_port)
    return json.dumps(value)


def provision(api: SecretsApi, profile: Profile, credentials: Credentials) -> None:
    """Create each credential's secret, or bring its AWSCURRENT in line with ``credentials.env``."""
    for name in CREDENTIAL_NAMES:
        secret_id = secret_name(profile, name)
        login = credentials.logins[name]
        existing = api.login(secret_id)
        if existing == login:
            continue
        value = secret_value(login, name, profile)
        if existing is None:
            try:
                api.create_secret(Name=secret_id, SecretString=value, Description=f"local {name} login")
                continue
            except SecretsError as exc:
                if exc.response["Error"]["Code"] != "ResourceExistsException":
                    raise
        api.put_secret_value(SecretId=secret_id, SecretString=value, VersionStages=["AWSCURRENT"])
