"""Reading a Secrets Manager secret in a short-lived child process, so the services' workers never load boto3.

boto3 and a Secrets Manager client cost about 18 MiB in every process that imports them (measured in
docs/performance-design.md), and a worker needs a secret only at its first connection and after a refused
login. So :class:`ChildProcessSecretsClient` runs ``python -m common.secret_fetch SECRET_ID STAGE`` for each
read: the child imports boto3, prints the secret string on its stdout pipe (never a log, never a file) and
exits. A read takes about half a second more than in-process; reads are rare and already rate-limited
(``common.secrets``).

Exit codes of the child: 0 the secret string follows on stdout; 3 no version has that stage
(``ResourceNotFoundException``, e.g. no rotation in progress); 2 anything else, with the error code or
exception name (never the secret) on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys

#: Exit code of the child for "no version of the secret has that stage".
NOT_FOUND_EXIT = 3
#: Exit code of the child for any other failure.
FAILED_EXIT = 2
#: Upper bound on one read: the interpreter's start, boto3's import and the client's own timeouts and retries.
CHILD_TIMEOUT_SECONDS = 20.0


class SecretReadError(RuntimeError):
    """A read failed; ``response`` has the shape of botocore's ClientError for ``common.secrets``' checks."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.response = {"Error": {"Code": code}}


class ChildProcessSecretsClient:
    """The one call of a boto3 Secrets Manager client that ``common.secrets`` uses, served by a child process."""

    def get_secret_value(self, SecretId: str, VersionStage: str) -> dict[str, str]:  # boto3 names its arguments so
        """``{"SecretString": ...}`` of the version of ``SecretId`` in ``VersionStage``."""
        environment = dict(os.environ)
        # The child imports exactly what this process can import (common/, contract/, site-packages).
        environment["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        try:
            child = subprocess.run(
                [sys.executable, "-m", "common.secret_fetch", SecretId, VersionStage],
                capture_output=True,
                env=environment,
                timeout=CHILD_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SecretReadError(f"secret reader did not finish: {type(exc).__name__}") from exc
        if child.returncode == 0:
            return {"SecretString": child.stdout.decode("utf-8")}
        detail = child.stderr.decode("utf-8", "replace").strip()[-300:]
        if child.returncode == NOT_FOUND_EXIT:
            raise SecretReadError(detail, "ResourceNotFoundException")
        raise SecretReadError(detail or f"secret reader exited with {child.returncode}", detail.split(":")[0])


def main(argv: list[str] | None = None) -> int:
    """The child: read one secret version with boto3 and print its string."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m common.secret_fetch SECRET_ID STAGE", file=sys.stderr)
        return FAILED_EXIT
    from common.secrets import secretsmanager_client

    secret_id, stage = args
    try:
        response = secretsmanager_client().get_secret_value(SecretId=secret_id, VersionStage=stage)
    except Exception as exc:  # noqa: BLE001 - reported as a code, never with the secret
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "") or type(exc).__name__
        print(f"{code}: cannot read {secret_id} ({stage})", file=sys.stderr)
        return NOT_FOUND_EXIT if code == "ResourceNotFoundException" else FAILED_EXIT
    sys.stdout.write(response["SecretString"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
