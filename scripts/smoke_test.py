#!/usr/bin/env python3
"""Smoke test of a deployed (or local) movies system, through its public gateway URL.

Checks, in order:

1. ``GET /health`` answers 200 with the gateway's own JSON body (``{"status": "ok", "service": "gateway"}``,
   content type JSON), retried for ``--wait`` seconds (a fresh deployment may still be warming up);
2. ``GET /api/movies`` without a token answers 401 (authentication is enforced);
3. ``GET /api/movies`` with a bearer token answers 200 (an authorised caller gets through to inventory).

The token is ``--token`` (or env ``SMOKE_TOKEN``), or one obtained with the OAuth 2.0 client-credentials flow
from ``--token-url`` with ``--client-id`` and the client secret from ``--client-secret`` / env
``SMOKE_CLIENT_SECRET``, or, with ``--user-pool-id``, read from Cognito by the AWS CLI
(``aws cognito-idp describe-user-pool-client``; the caller's AWS credentials, e.g. ``AWS_PROFILE``).

Examples::

    # the local system (make up); make smoke does exactly this
    python3 scripts/smoke_test.py --url http://127.0.0.1:3000 --token "$(python3 -m local_system token)"
    # a deployment, with the outputs of its stacks
    python3 scripts/smoke_test.py --url "$API_URL" --token-url "$TOKEN_URL" \\
        --client-id "$MACHINE_CLIENT_ID" --user-pool-id "$USER_POOL_ID"

On AWS the URL is the CloudFront distribution's (the stack output ``ApiUrl``): the load balancer answers only
requests that come through CloudFront.

Redirects are never followed: a 3xx anywhere is a failure that names its Location. (A login page or an
HTTP-to-HTTPS redirect answers 200 once followed; a client that follows it would pass with the gateway down.)

Standard library only, so it runs in a bare CodeBuild image. Secrets (client secret, tokens) are never
printed. Exit status: 0 when every check passed, 1 when one failed, 2 for usage errors.

(Over 250 lines: a standalone, stdlib-only script for CodeBuild; token acquisition, the checks and the CLI
stay in one file so it can be copied and run anywhere.)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import Message

USER_AGENT = "movies-smoke-test/1"
HEALTH_PATH = "/health"
API_PATH = "/api/movies"
#: What the gateway's /health answers (services/common/web.py; the name is contract.services.GATEWAY.name,
#: repeated here because the script runs without the repository). A unit test keeps the two equal.
HEALTH_BODY = {"status": "ok", "service": "gateway"}


class SmokeTestError(Exception):
    """A check failed; the message says which and why (without secrets)."""


class UsageError(Exception):
    """The options do not describe how to get a token."""


@dataclass(frozen=True)
class Response:
    """Status, (truncated) body and the headers the checks read, of one HTTP exchange."""

    status: int
    body: bytes
    content_type: str = ""
    location: str | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hands every 3xx back as it is (urllib would otherwise follow it to, say, a login page)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        """No follow-up request: urllib then raises HTTPError with the 3xx status."""
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 10.0,
) -> Response:
    """One HTTP request; HTTP error statuses are answers (returned), network failures raise ``OSError``.

    Never follows a redirect: a 3xx raises ``SmokeTestError`` naming the Location it pointed to.
    """
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"not an http(s) URL: {url!r}")
    headers = {"User-Agent": USER_AGENT, **(headers or {})}
    req = urllib.request.Request(url, method=method, data=data, headers=headers)  # noqa: S310 -- scheme checked
    try:
        with _OPENER.open(req, timeout=timeout) as answer:
            response = _response(answer.status, answer.headers, answer.read(65536))
    except urllib.error.HTTPError as error:
        with error:
            response = _response(error.code, error.headers, error.read(65536))
    if 300 <= response.status < 400:
        path = urllib.parse.urlsplit(url).path or "/"
        raise SmokeTestError(
            f"{method} {path} answered {response.status}, a redirect to {response.location or '(no Location)'}; "
            "redirects are never followed (a login page in front of the gateway?)"
        )
    return response


def _response(status: int, headers: Message | None, body: bytes) -> Response:
    if headers is None:
        return Response(status, body)
    return Response(status, body, headers.get("Content-Type", ""), headers.get("Location"))


def health_problem(answer: Response) -> str | None:
    """Why ``answer`` is not the gateway's own ``/health`` answer, or None when it is."""
    if answer.status != 200:
        return f"answered {answer.status}"
    media_type = answer.content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return f"answered 200 with content type {answer.content_type or '(none)'!r}, not the gateway's JSON"
    try:
        body = json.loads(answer.body)
    except ValueError:
        return "answered 200 with a body that is not JSON"
    if not isinstance(body, dict) or any(body.get(key) != value for key, value in HEALTH_BODY.items()):
        return f"answered 200 with {answer.body[:200]!r}, not the gateway's {json.dumps(HEALTH_BODY)}"
    return None


def client_credentials_token(
    token_url: str, client_id: str, client_secret: str, scope: str | None = None, timeout: float = 10.0
) -> str:
    """An access token from an OAuth 2.0 token endpoint (Cognito ``/oauth2/token``), client-credentials flow.

    The client authenticates with HTTP Basic (``client_secret_basic``), as Cognito expects.
    """
    form = {"grant_type": "client_credentials", "client_id": client_id}
    if scope:
        form["scope"] = scope
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    try:
        answer = request(
            token_url,
            method="POST",
            data=urllib.parse.urlencode(form).encode(),
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
            timeout=timeout,
        )
    except OSError as error:
        raise SmokeTestError(f"token endpoint {token_url} unreachable: {error}") from None
    if answer.status != 200:
        # OAuth error bodies ({"error": "invalid_client"}) carry no secrets; show the error code only.
        raise SmokeTestError(f"token endpoint answered {answer.status} ({_oauth_error(answer.body)})")
    try:
        token = json.loads(answer.body)["access_token"]
    except (ValueError, KeyError, TypeError):
        raise SmokeTestError("token endpoint answered 200 without an access_token") from None
    if not isinstance(token, str) or not token:
        raise SmokeTestError("token endpoint answered an empty access_token")
    return token


def _oauth_error(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", "no error code"))
    except (ValueError, AttributeError):
        return "no JSON body"


def cognito_client_secret(user_pool_id: str, client_id: str, aws_cli: str = "aws") -> str:
    """The app client's secret, read from Cognito with the AWS CLI (``DescribeUserPoolClient``).

    The region is the prefix of the pool id (``eu-west-1_AbC123``). Credentials are the caller's (for the
    pipeline: the smoke-test role of the target account, through ``AWS_PROFILE``).
    """
    cli = shutil.which(aws_cli)
    if cli is None:
        raise UsageError("--user-pool-id needs the AWS CLI (aws) on PATH; or pass --client-secret")
    region = user_pool_id.split("_", 1)[0]
    result = subprocess.run(
        [
            cli,
            "cognito-idp",
            "describe-user-pool-client",
            "--region",
            region,
            "--user-pool-id",
            user_pool_id,
            "--client-id",
            client_id,
            "--query",
            "UserPoolClient.ClientSecret",
            "--output",
            "text",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    value = result.stdout.strip()
    # `--output text` prints "None" for a client without a secret.
    if result.returncode != 0 or value in ("", "None"):
        raise SmokeTestError(f"could not read the client secret from Cognito: {result.stderr.strip()[:500]}")
    return value


def wait_for_health(
    base_url: str, wait_seconds: float, interval: float = 5.0, timeout: float = 10.0, log: Callable[[str], None] = print
) -> None:
    """``GET /health`` until the gateway's own answer comes back, for at most ``wait_seconds`` (0: one attempt).

    A redirect fails at once (``request`` raises): it is a configuration problem, not a warming-up gateway.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            problem = health_problem(request(base_url + HEALTH_PATH, timeout=timeout))
            if problem is None:
                return
        except OSError as error:
            problem = f"unreachable ({error})"
        if time.monotonic() + interval > deadline:
            raise SmokeTestError(f"GET {HEALTH_PATH} {problem}, expected 200 {json.dumps(HEALTH_BODY)}")
        log(f"  {HEALTH_PATH} {problem}; retrying in {interval:g} s")
        time.sleep(interval)


def expect_status(base_url: str, path: str, expected: int, token: str | None = None, timeout: float = 10.0) -> None:
    """``GET path`` answers ``expected`` (with ``Authorization: Bearer`` when a token is given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = request(base_url + path, headers=headers, timeout=timeout)
    except OSError as error:
        raise SmokeTestError(f"GET {path} unreachable: {error}") from None
    if answer.status != expected:
        who = "with a token" if token else "without a token"
        raise SmokeTestError(f"GET {path} {who} answered {answer.status}, expected {expected}")


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> None:
    """All checks against ``args.url``; raises ``SmokeTestError`` at the first failure."""
    base_url = args.url.rstrip("/")
    log(f"smoke test of {base_url}")
    wait_for_health(base_url, args.wait, interval=args.interval, timeout=args.timeout, log=log)
    log(f"ok   GET {HEALTH_PATH} -> 200")
    expect_status(base_url, API_PATH, 401, timeout=args.timeout)
    log(f"ok   GET {API_PATH} without a token -> 401")
    token = obtain_token(args, log)
    expect_status(base_url, API_PATH, 200, token=token, timeout=args.timeout)
    log(f"ok   GET {API_PATH} with a token -> 200")


def obtain_token(args: argparse.Namespace, log: Callable[[str], None] = print) -> str:
    """The bearer token: given directly, or from the client-credentials flow (secret given or from Cognito)."""
    if args.token:
        return args.token
    if not (args.token_url and args.client_id):
        raise UsageError("give --token (or SMOKE_TOKEN), or --token-url and --client-id for client credentials")
    secret = args.client_secret
    if not secret:
        if not args.user_pool_id:
            raise UsageError("client credentials need --client-secret (or SMOKE_CLIENT_SECRET) or --user-pool-id")
        secret = cognito_client_secret(args.user_pool_id, args.client_id)
    token = client_credentials_token(args.token_url, args.client_id, secret, args.scope, timeout=args.timeout)
    log("ok   client-credentials token obtained")
    return token


def build_parser() -> argparse.ArgumentParser:
    """Command-line options; secrets may come from the environment so they stay out of process lists."""
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=env("SMOKE_URL"), help="base URL of the gateway / ALB (env SMOKE_URL)")
    parser.add_argument("--token", default=env("SMOKE_TOKEN"), help="bearer token to use (env SMOKE_TOKEN)")
    parser.add_argument("--token-url", default=env("SMOKE_TOKEN_URL"), help="OAuth token endpoint (client credentials)")
    parser.add_argument("--client-id", default=env("SMOKE_CLIENT_ID"), help="machine client id")
    parser.add_argument(
        "--client-secret",
        default=env("SMOKE_CLIENT_SECRET"),
        help="machine client secret (prefer env SMOKE_CLIENT_SECRET)",
    )
    parser.add_argument(
        "--user-pool-id",
        default=env("SMOKE_USER_POOL_ID"),
        help="read the client secret from this Cognito user pool with the AWS CLI",
    )
    parser.add_argument(
        "--scope", default=env("SMOKE_SCOPE"), help="scopes to request (default: all the client is allowed)"
    )
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to keep retrying /health (default 0)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between /health attempts")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 passed, 1 a check failed, 2 usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url (or SMOKE_URL) is required")
    try:
        run(args)
    except UsageError as error:
        print(f"usage error: {error}", file=sys.stderr)
        return 2
    except SmokeTestError as error:
        print(f"FAIL {error}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
