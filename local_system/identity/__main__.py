"""Docker Compose's ``identity-init``: provision the emulated Cognito and hand out tokens (Python only).

It runs in the moto image with ``local_system/`` and ``contract/`` mounted read-only (docker-compose.yml)::

    python -m local_system.identity provision --url http://identity:5000 --pool-name microservices-compose
    python -m local_system.identity token --url http://identity:5000 --pool-name microservices-compose

Both read the user's password from ``IDENTITY_DEMO_PASSWORD`` (never from the command line: ``ps`` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from local_system.identity.cognito import (
    CLIENT_NAME,
    DEMO_USER,
    CognitoApi,
    access_token,
    gateway_settings,
    provision_pool,
)
from local_system.processes import LocalSystemError

#: Pool name Docker Compose provisions; its hashed ids are written into docker-compose.yml.
COMPOSE_POOL_NAME = "microservices-compose"
#: Where the command line reads the user's password from.
PASSWORD_ENV = "IDENTITY_DEMO_PASSWORD"  # noqa: S105 - a variable name, not a password


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
