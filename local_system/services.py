"""The three Flask services as background gunicorn processes, configured like in production (env only)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from local_system.credentials import Credentials
from local_system.identity import IdentityEmulator
from local_system.processes import (
    LocalSystemError,
    http_status,
    is_alive,
    port_released,
    read_pid,
    spawn,
    stop_recorded,
    tail,
)
from local_system.profiles import REPO_ROOT, SERVICE_DATABASE, SERVICES, Profile

SERVICES_DIR = REPO_ROOT / "services"
BILLING_QUEUE = "billing_queue"
#: gunicorn's graceful_timeout is 25 s (billing finishes its in-flight batch); SIGKILL only after that.
STOP_TIMEOUT = 35
READY_TIMEOUT = 60
#: Settings a developer may override from the shell (e.g. LOG_LEVEL=DEBUG make up); the rest is fixed.
OVERRIDABLE_DEFAULTS = {"LOG_LEVEL": "INFO"}


def gunicorn_executable() -> Path:
    """gunicorn from the repository's virtualenv (``make venv``), else from PATH."""
    candidate = REPO_ROOT / ".venv" / "bin" / "gunicorn"
    if candidate.exists():
        return candidate
    found = shutil.which("gunicorn")
    if found:
        return Path(found)
    raise LocalSystemError("gunicorn not found: run `make venv` first (it installs services/requirements.txt)")


class ServiceProcess:
    """One service (inventory, billing or gateway) run by gunicorn in the background."""

    def __init__(self, name: str, profile: Profile, credentials: Callable[[], Credentials]):
        if name not in SERVICES:
            raise LocalSystemError(f"unknown service {name!r}; use one of: {', '.join(SERVICES)}")
        self.name = name
        self.profile = profile
        self._credentials = credentials
        self.port = profile.service_ports[name]
        self.pid_file = profile.state_dir / f"{name}.pid"
        self.log_file = profile.state_dir / f"{name}.log"
        self.url = profile.url(name)

    @property
    def _marker(self) -> str:
        """Text in the gunicorn master's command line that identifies this service."""
        return f"{self.name}:create_app"

    def env(self) -> dict[str, str]:
        """The service's environment: the configuration contract (README) filled in from the profile.

        Contains passwords: only the explicit ``env`` command prints it.
        """
        credentials = self._credentials()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "RABBITMQ_"))}
        for key, default in OVERRIDABLE_DEFAULTS.items():
            env.setdefault(key, default)
        env.update(
            PORT=str(self.port),
            BIND_HOST="127.0.0.1",
            SERVICE_NAME=self.name,
            # services/ for the service packages, the repository root for contract/ (as in the image).
            PYTHONPATH=os.pathsep.join((str(SERVICES_DIR), str(REPO_ROOT))),
            PYTHONUNBUFFERED="1",
            PROMETHEUS_MULTIPROC_DIR=str(self.profile.state_dir / "metrics" / self.name),
        )
        if self.name in SERVICE_DATABASE:
            env.update(
                DATABASE_HOST="127.0.0.1",
                DATABASE_PORT=str(self.profile.postgres_port),
                DATABASE_NAME=SERVICE_DATABASE[self.name],
                DATABASE_USER=credentials.postgres_user,
                DATABASE_PASSWORD=credentials.postgres_password,
                # The private server has no certificate; AWS sets require/verify-full instead.
                DATABASE_SSLMODE="disable",
            )
        if self.name in ("gateway", "billing"):
            env.update(
                RABBITMQ_URL=f"amqp://127.0.0.1:{self.profile.amqp_port}/",
                RABBITMQ_USER=credentials.rabbitmq_user,
                RABBITMQ_PASSWORD=credentials.rabbitmq_password,
                BILLING_QUEUE=BILLING_QUEUE,
            )
        if self.name == "gateway":
            env["INVENTORY_URL"] = self.profile.url("inventory")
            # The gateway trusts the local Cognito emulator exactly as it trusts Cognito on AWS.
            env.update(IdentityEmulator(self.profile).gateway_env())
        if self.name == "billing":
            env["GUNICORN_WORKERS"] = "1"  # one consumer process: ordering and prefetch stay predictable
        return env

    def argv(self) -> list[str]:
        """The production command line (README, Container images)."""
        return [str(gunicorn_executable()), "--config", "python:common.gunicorn_config", f"{self.name}:create_app()"]

    def pid(self) -> int | None:
        """Pid of the gunicorn master, or None when not running."""
        pid = read_pid(self.pid_file)
        return pid if is_alive(pid, self._marker) else None

    def is_ready(self) -> bool:
        """True when ``/ready`` answers 200 (its database/broker are reachable)."""
        return http_status(f"{self.url}/ready") == 200

    def start(self) -> bool:
        """Start the service unless it already runs; return True when a new process was started."""
        if self.pid() is not None:
            return False
        if not port_released(self.port):
            raise LocalSystemError(
                f"port {self.port} for {self.name} is taken by another program"
                + (f"; pick another with {self.name.upper()}_PORT=..." if self.profile.name == "dev" else "")
            )
        if not (SERVICES_DIR / self.name / "__init__.py").exists():
            raise LocalSystemError(f"services/{self.name} does not exist yet")
        env = self.env()
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        spawn(self.argv(), self.log_file, env, SERVICES_DIR, self.pid_file)
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until ``/ready`` answers 200; fail fast, with the log tail, if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise LocalSystemError(
                    f"{self.name} exited during start-up; see {self.log_file}:\n{tail(self.log_file, 25)}"
                )
            if self.is_ready():
                return
            time.sleep(0.2)
        raise LocalSystemError(
            f"{self.name} did not answer 200 on {self.url}/ready within {timeout:.0f} s; "
            f"see {self.log_file}:\n{tail(self.log_file, 25)}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM the gunicorn master (graceful: workers finish in-flight work), SIGKILL after ``timeout``."""
        return stop_recorded(self.pid(), self.pid_file, timeout)
