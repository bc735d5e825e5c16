"""Secrets Manager rotation of the broker's RabbitMQ user (single user): the four steps of a rotation Lambda.

Secrets Manager calls ``handler`` once per step with ``SecretId``, ``ClientRequestToken`` (the id of the new
version) and ``Step``; every step is idempotent, because Secrets Manager retries a failed step:

- ``createSecret``: a copy of ``AWSCURRENT`` with a new random password, stored as ``AWSPENDING``.
- ``setSecret``:    the broker gets the pending password (RabbitMQ management API, ``PUT /api/users/<name>``
  with the user's existing tags), authenticated as the user with ``AWSCURRENT``; nothing to do when the
  pending password already works (a retried step).
- ``testSecret``:   ``GET /api/whoami`` with the pending password.
- ``finishSecret``: ``AWSCURRENT`` moves to the new version.

Between ``setSecret`` and ``finishSecret`` the broker accepts only the pending password: the services then
fall back to ``AWSPENDING`` when a login is refused (services/common/secrets.py). Established AMQP
connections are not affected by a password change. Standard library and boto3 only (the Lambda runtime has
both). ``BROKER_MANAGEMENT_URL``: the management API's base URL (Amazon MQ: ``https://<broker
id>.mq.<region>.amazonaws.com``; the local system: ``http://127.0.0.1:<port>``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
MANAGEMENT_URL_ENV = "BROKER_MANAGEMENT_URL"
#: Letters, digits, '-' and '_' only: no escaping problems in URLs, shells or configuration files.
PASSWORD_BYTES = 24
HTTP_TIMEOUT_SECONDS = 10


class RotationError(RuntimeError):
    """A step cannot be completed; Secrets Manager marks the rotation failed and retries later."""


class Management:
    """The RabbitMQ management HTTP API at ``base_url``, authenticated per call with basic auth."""

    def __init__(self, base_url: str):
        if not base_url.startswith(("https://", "http://")):
            raise RotationError(f"{MANAGEMENT_URL_ENV} must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")

    def _request(self, method: str, path: str, user: str, password: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.base_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
                "Content-Type": "application/json",
            },
        )
        context = ssl.create_default_context() if self.base_url.startswith("https://") else None
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS, context=context) as response:  # noqa: S310
            data = response.read()
        return json.loads(data) if data else None

    def authenticates(self, user: str, password: str) -> bool:
        """True when the broker accepts the login (``GET /api/whoami``); False on 401."""
        try:
            whoami = self._request("GET", "/api/whoami", user, password)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return False
            raise
        return isinstance(whoami, dict) and whoami.get("name") == user

    def set_password(self, user: str, new_password: str, auth_password: str) -> None:
        """Give ``user`` the new password, keeping its tags (a PUT without them would remove them)."""
        path = f"/api/users/{urllib.parse.quote(user, safe='')}"
        existing = self._request("GET", path, user, auth_password)
        tags = existing.get("tags", "")
        tags = ",".join(tags) if isinstance(tags, list) else str(tags)
        self._request("PUT", path, user, auth_password, {"password": new_password, "tags": tags})


def _login(client: Any, secret_id: str, **version: str) -> dict[str, Any]:
    """The secret's JSON of one version (``VersionStage=...`` and/or ``VersionId=...``)."""
    value = json.loads(client.get_secret_value(SecretId=secret_id, **version)["SecretString"])
    if not value.get("username") or "password" not in value:
        raise RotationError(f"secret {secret_id} is not JSON with username and password")
    return value


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "response", {}).get("Error", {}).get("Code") == "ResourceNotFoundException"


def create_secret(client: Any, secret_id: str, token: str) -> None:
    """Store a copy of AWSCURRENT with a new random password as version ``token``, stage AWSPENDING."""
    current = _login(client, secret_id, VersionStage=CURRENT)
    try:
        _login(client, secret_id, VersionId=token, VersionStage=PENDING)
        return  # created by an earlier attempt of this step
    except Exception as exc:
        if not _is_missing(exc):
            raise
    pending = {**current, "password": secrets.token_urlsafe(PASSWORD_BYTES)}
    client.put_secret_value(
        SecretId=secret_id, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=[PENDING]
    )
    log.info("createSecret: stored a new pending version", extra={"secret_id": secret_id, "version": token})


def set_secret(client: Any, secret_id: str, token: str, management: Management) -> None:
    """Give the broker user the pending password, authenticated with the current one (idempotent)."""
    pending = _login(client, secret_id, VersionId=token, VersionStage=PENDING)
    current = _login(client, secret_id, VersionStage=CURRENT)
    user = pending["username"]
    if user != current["username"]:
        raise RotationError("single-user rotation: the pending version must keep the current user name")
    if management.authenticates(user, pending["password"]):
        return  # set by an earlier attempt of this step
    if not management.authenticates(user, current["password"]):
        raise RotationError(f"the broker accepts neither the current nor the pending password of {user}")
    management.set_password(user, pending["password"], current["password"])
    log.info("setSecret: the broker user has the pending password", extra={"secret_id": secret_id, "user": user})


def test_secret(client: Any, secret_id: str, token: str, management: Management) -> None:
    """Fail unless the broker accepts the pending login."""
    pending = _login(client, secret_id, VersionId=token, VersionStage=PENDING)
    if not management.authenticates(pending["username"], pending["password"]):
        raise RotationError(f"the broker refuses the pending password of {pending['username']}")


def finish_secret(client: Any, secret_id: str, token: str) -> None:
    """Move AWSCURRENT to version ``token`` (a no-op when it is already there)."""
    versions = client.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    current = next((version for version, stages in versions.items() if CURRENT in stages), None)
    if current == token:
        return
    client.update_secret_version_stage(
        SecretId=secret_id, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )
    log.info("finishSecret: AWSCURRENT moved", extra={"secret_id": secret_id, "version": token})


def rotate(event: dict[str, str], client: Any, management: Management) -> None:
    """Run the event's step after checking that ``ClientRequestToken`` is a version being rotated."""
    secret_id, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    stages = client.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {}).get(token)
    if stages is None and step != "createSecret":
        # RotateSecret creates the version (stage AWSPENDING) before calling createSecret; a local run step by
        # step (local_system/rotation.py) has no such caller, so createSecret may find it missing.
        raise RotationError(f"version {token} of {secret_id} does not exist")
    if stages is not None and CURRENT in stages:
        log.info("version already current; nothing to do", extra={"secret_id": secret_id, "step": step})
        return
    if stages is not None and PENDING not in stages:
        raise RotationError(f"version {token} of {secret_id} is not pending rotation")
    if step == "createSecret":
        create_secret(client, secret_id, token)
    elif step == "setSecret":
        set_secret(client, secret_id, token, management)
    elif step == "testSecret":
        test_secret(client, secret_id, token, management)
    elif step == "finishSecret":
        finish_secret(client, secret_id, token)
    else:
        raise RotationError(f"unknown step {step!r}")


def handler(event: dict[str, str], context: object) -> None:
    """The Lambda entry point (``handler.handler``)."""
    import boto3  # the Lambda runtime's; imported here so the module loads without it (tests, local CLI)

    management_url = os.environ.get(MANAGEMENT_URL_ENV, "")
    if not management_url:
        raise RotationError(f"{MANAGEMENT_URL_ENV} is not set")
    rotate(event, boto3.client("secretsmanager"), Management(management_url))
