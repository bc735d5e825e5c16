"""The local system's Secrets Manager: one secret per credential in the emulator (moto) it already runs.

Services get ``DATABASE_SECRET_ID`` / ``RABBITMQ_SECRET_ID`` and read them with boto3 exactly as on AWS. This
module speaks the secretsmanager JSON protocol over urllib (moto ignores request signatures), so the local
system stays standard-library only; its method names and keyword arguments are boto3's, so the broker's
rotation handler (functions/broker_rotation) runs on it unchanged. The emulator keeps secrets in memory:
:func:`provision` re-creates them from ``credentials.env`` after a restart.
"""

from __future__ import annotations

import json
from typing import Any

from local_system import emulator_api
from local_system.credentials import BROKER, CREDENTIAL_NAMES, Credentials, Login
from local_system.emulator_api import EmulatorRefused
from local_system.profiles import Profile


def secret_name(profile: Profile, name: str) -> str:
    """The secret of credential ``name`` (``inventory``, ``billing``, ``rabbitmq``) in ``profile``."""
    return f"local-{profile.name}/{name}"


class SecretsError(EmulatorRefused):
    """A refused call; ``response`` is shaped like botocore's ClientError (``["Error"]["Code"]``)."""

    def __init__(self, message: str, code: str):
        super().__init__(message, code)
        self.response = {"Error": {"Code": code, "Message": message}}


class SecretsApi:
    """The secretsmanager actions the local system and the rotation handler use, against the emulator."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return emulator_api.call(self.url, f"secretsmanager.{action}", "secretsmanager", payload)
        except EmulatorRefused as exc:
            raise SecretsError(f"secretsmanager {action}: {exc}", exc.code) from None

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
