"""The emulator process of ``make up`` and the tests: moto in server mode, started, stopped and provisioned.

moto runs from the virtualenv on the profile's port; its pools live in memory, so the provisioned pool is
saved (``identity.json``, mode 0600) and re-created with the same ids after a restart.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from local_system.emulator_api import DUMMY_KEY
from local_system.identity.cognito import (
    REGION,
    CognitoApi,
    PoolInfo,
    access_token,
    ensure_user,
    gateway_settings,
    provision_pool,
)
from local_system.identity.web_client import ensure_web_client
from local_system.parts import ServerPart
from local_system.processes import LocalSystemError, port_open, spawn, tail, wait_for
from local_system.profiles import REPO_ROOT, Profile

START_TIMEOUT = 60.0


class IdentityEmulator(ServerPart):
    """Start, stop and provision the profile's emulated Cognito."""

    name = "cognito"
    title = "the emulator"
    process_marker = "moto"
    stop_timeout = 15  # its in-memory pools go with it

    def __init__(self, profile: Profile, on_started: Callable[[], None] | None = None):
        self.profile = profile
        # What else lives in the emulator's memory and must be re-created with it (the local secrets).
        self._on_started = on_started
        self.port = profile.cognito_port
        self.home = profile.state_dir / "cognito"
        self.pid_file = self.home / "moto.pid"
        self.log_file = self.home / "moto.log"
        self.state_file = self.home / "identity.json"
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = CognitoApi(self.url)

    # -- process -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start moto (if not running), then make sure the pool, groups, client and demo user exist."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.pid() is None:
            self._check_ports_free()
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
        if self._on_started is not None:
            self._on_started()

    # -- the pool ------------------------------------------------------------------------------------------
    def saved_pool(self) -> PoolInfo | None:
        """The pool last provisioned, as saved (without asking the emulator whether it still has it)."""
        if not self.state_file.exists():
            return None
        saved = json.loads(self.state_file.read_text())
        known = PoolInfo.__dataclass_fields__
        return PoolInfo(**{key: value for key, value in saved.items() if key in known})

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
        if existing is not None and existing.web_client_id:
            return existing
        saved = self.saved_pool()
        # Meets the pool's policy: upper, lower, digit, symbol, 8+ characters.
        password = saved.password if saved else f"Local-{secrets.token_urlsafe(12)}-9a"
        info = provision_pool(self.api, f"microservices-{self.profile.name}", password)
        # The web front end's public client (the emulated managed login signs in through it).
        info = replace(info, web_client_id=ensure_web_client(self.api, info.pool_id, self.profile.web_port))
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
    env.update(AWS_ACCESS_KEY_ID=DUMMY_KEY, AWS_SECRET_ACCESS_KEY=DUMMY_KEY, AWS_DEFAULT_REGION=REGION)
    # Ids derived from names, as under Docker Compose: a restarted emulator re-creates the same pool and client.
    env.update(MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY="HASH", MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY="HASH")
    return env
