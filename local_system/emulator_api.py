"""One call to the local AWS emulator (moto in server mode) in the AWS JSON 1.1 protocol, over urllib.

The local system stays standard-library only, so it speaks the protocol itself; moto reads the region from
the credential scope and checks no signature, so a fixed dummy one is enough.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from local_system.processes import LocalSystemError

#: The region of everything the emulator holds (the services' AWS_REGION locally).
REGION = "eu-west-1"
#: The dummy access key of the local system and its services (real keys must never reach the emulator).
DUMMY_KEY = "local"


class EmulatorRefused(LocalSystemError):
    """The emulator answered with an error; ``code`` is the AWS error code (e.g. ResourceNotFoundException)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def authorization(signing_name: str) -> str:
    """An Authorization header moto accepts: it routes by the credential scope's service, checks no signature."""
    return (
        f"AWS4-HMAC-SHA256 Credential={DUMMY_KEY}/20260101/{REGION}/{signing_name}/aws4_request, "
        "SignedHeaders=host, Signature=local"
    )


def call(
    url: str, target: str, signing_name: str, payload: dict[str, Any], hint: str = "", json_version: str = "1.1"
) -> dict[str, Any]:
    """POST ``payload`` as action ``target`` (e.g. ``secretsmanager.GetSecretValue``); the decoded answer.
    ``json_version``: the service's protocol version (SQS speaks AWS JSON 1.0).

    Raises EmulatorRefused when the emulator refuses the call, LocalSystemError when it does not answer.
    """
    request = urllib.request.Request(  # noqa: S310 - the local emulator's http:// URL
        f"{url.rstrip('/')}/",
        data=json.dumps(payload).encode(),
        headers={
            "Content-Type": f"application/x-amz-json-{json_version}",
            "X-Amz-Target": target,
            "Authorization": authorization(signing_name),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local emulator
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        try:
            error = json.loads(detail)
        except ValueError:
            error = {}
        error = error if isinstance(error, dict) else {}
        code = str(error.get("__type", "")).rsplit("#", 1)[-1] or f"HTTP{exc.code}"
        raise EmulatorRefused(f"{exc.code} {code}: {error.get('message') or detail}", code) from None
    except OSError as exc:
        advice = f"; {hint}" if hint else ""
        raise LocalSystemError(f"the AWS emulator at {url} does not answer ({exc}){advice}") from None
