"""The three Flask services as background gunicorn processes, configured like in production (env only).

Which settings a service gets follows the contract: its database (``contract.services``), the queue
(``contract.messaging``) and the variable names (``contract.environment``); ``env()`` refuses a name the
contract does not list for the service.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from contract import environment as E
from contract.services import BILLING, INVENTORY
from contract.services import service as contract_service
from contract.shards import shard_variable
from local_system.credentials import BILLING_SHARD_DATABASES, BROKER, LOCAL_BILLING_SHARDS, order_id_key
from local_system.emulator_api import DUMMY_KEY, REGION
from local_system.identity.emulator import IdentityEmulator
from local_system.poster_resources import poster_settings
from local_system.processes import (
    LocalSystemError,
    exit_status,
    http_status,
    is_alive,
    log_offset,
    port_released,
    read_pid,
    spawn,
    stop_recorded,
    tail,
)
from local_system.profiles import REPO_ROOT, SERVICES, Profile
from local_system.redis_server import GATEWAY_USER, RedisServer
from local_system.saga_resources import service_settings as saga_storage_settings
from local_system.secret_store import secret_name

SERVICES_DIR = REPO_ROOT / "services"
#: The services import their own packages (services/) and the contract (the repository root).
PYTHONPATH = os.pathsep.join((str(SERVICES_DIR), str(REPO_ROOT)))
#: gunicorn's graceful_timeout is 25 s (billing finishes its in-flight batch); SIGKILL only after that.
STOP_TIMEOUT = 35
READY_TIMEOUT = 60
#: Settings a developer may override from the shell (e.g. LOG_LEVEL=DEBUG make up); the rest is fixed.
#: Tracing is on locally, every request sampled, so `make trace` finds any of them; OTEL_TRACES_EXPORTER=none
#: or OTEL_TRACES_SAMPLER_ARG=0.05 in the shell turns it off or samples like AWS (make bench does both).
OVERRIDABLE_DEFAULTS = {
    E.LOG_LEVEL.name: "INFO", E.OTEL_TRACES_EXPORTER.name: "file", E.OTEL_TRACES_SAMPLER_ARG.name: "1.0"
}
#: The test system's tracing, whatever the caller's shell says: its trace tests read every request's spans.
TEST_TRACING = {E.OTEL_TRACES_EXPORTER.name: "file", E.OTEL_TRACES_SAMPLER.name: "parentbased_traceidratio",
                E.OTEL_TRACES_SAMPLER_ARG.name: "1.0"}
#: Throttles the dev system takes from the caller's shell (off when unset) and the test system never does.
THROTTLES = (
    E.RATE_LIMIT_READS_PER_SECOND, E.RATE_LIMIT_WRITES_PER_SECOND, E.RATE_LIMIT_BURST, E.BILLING_MAX_ROWS_PER_SECOND
)


def traces_dir(profile: Profile) -> Path:
    """Where the services' file exporter writes spans: one ``<service>.jsonl`` each (``make trace`` reads them)."""
    return profile.state_dir / "traces"


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
    """One service (inventory, billing or gateway) run by gunicorn in the background.

    ``replica`` 1 is the service itself; 2 and up are the extra copies ``make scale`` starts (label
    ``billing-2``: its own port, pid file, log and metrics folder; otherwise the same settings).
    """

    def __init__(self, name: str, profile: Profile, replica: int = 1):
        if name not in SERVICES:
            raise LocalSystemError(f"unknown service {name!r}; use one of: {', '.join(SERVICES)}")
        self.name = name
        self.replica = replica
        self.label = name if replica == 1 else f"{name}-{replica}"
        self.profile = profile
        self.port = profile.replica_port(name, replica)
        self.pid_file = profile.state_dir / f"{self.label}.pid"
        self.log_file = profile.state_dir / f"{self.label}.log"
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def _marker(self) -> str:
        """Text in the gunicorn master's command line that identifies this service."""
        return f"{self.name}:create_app"

    def env(self) -> dict[str, str]:
        """The service's environment: the shell's, minus stray database/broker/AWS settings, plus its own.

        AWS_* of the shell are dropped too: a developer's real AWS credentials must never reach a service
        that talks to the local emulator. Contains the emulator's dummy keys: only ``env`` prints it.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "RABBITMQ_", "AWS_"))}
        for key, default in OVERRIDABLE_DEFAULTS.items():
            env.setdefault(key, default)
        env.update(self.settings())
        env.update(PYTHONPATH=PYTHONPATH, PYTHONUNBUFFERED="1")
        return env

    def settings(self) -> dict[str, str]:
        """What this profile sets for the service, keyed by contract names (LocalSystemError on any other).

        Logins come from the Secrets Manager emulator (``*_SECRET_ID``), as on AWS: no password is in the
        environment, and a rotated one is picked up without a restart.
        """
        spec = contract_service(self.name)
        settings = {
            E.PORT.name: str(self.port),
            E.BIND_HOST.name: "127.0.0.1",
            E.SERVICE_NAME.name: self.name,
            E.PROMETHEUS_MULTIPROC_DIR.name: str(self.profile.state_dir / "metrics" / self.label),
            E.TRACES_DIR.name: str(traces_dir(self.profile)),
        }
        names = E.names_of(self.name)
        if spec.database:
            settings.update({
                E.DATABASE_HOST.name: "127.0.0.1",
                E.DATABASE_PORT.name: str(self.profile.postgres_port),
                E.DATABASE_NAME.name: spec.database,
                E.DATABASE_SECRET_ID.name: secret_name(self.profile, self.name),
                # The private server has no certificate; AWS sets require/verify-full instead.
                E.DATABASE_SSLMODE.name: "disable",
            })
        if E.BILLING_SHARDS.name in names:
            # Shards 1.. are databases of the same server, with billing's login: only the name differs.
            settings[E.BILLING_SHARDS.name] = str(LOCAL_BILLING_SHARDS)
            settings.update({shard_variable(k, E.DATABASE_NAME.name): database
                             for k, database in enumerate(BILLING_SHARD_DATABASES, start=1)})
        if E.RABBITMQ_URL.name in names:  # publishers and consumers of the queue
            settings.update({
                E.RABBITMQ_URL.name: f"amqp://127.0.0.1:{self.profile.amqp_port}/",
                E.RABBITMQ_SECRET_ID.name: secret_name(self.profile, BROKER),
                **{variable.name: name for name, variable in E.QUEUE_VARIABLES.items()},
            })
        if E.DATABASE_SECRET_ID.name in settings or E.RABBITMQ_SECRET_ID.name in settings:
            settings.update({
                E.AWS_REGION.name: REGION,
                E.AWS_ENDPOINT_URL_SECRETS_MANAGER.name: f"http://127.0.0.1:{self.profile.cognito_port}",
                E.AWS_ACCESS_KEY_ID.name: DUMMY_KEY,
                E.AWS_SECRET_ACCESS_KEY.name: DUMMY_KEY,
            })
        if E.POSTER_UPLOAD_BUCKET.name in names:
            # Posters: the uploads bucket and the results queue in the emulator (boto3 signs with the dummy keys).
            settings.update(poster_settings(self.profile))
            settings.update({
                E.AWS_REGION.name: REGION,
                E.AWS_ACCESS_KEY_ID.name: DUMMY_KEY,
                E.AWS_SECRET_ACCESS_KEY.name: DUMMY_KEY,
            })
        # The saga's bucket (invoices, claim checks) in the emulator, for the services whose contract lists it.
        settings.update(saga_storage_settings(self.profile, names))
        if E.INVENTORY_URL.name in names:
            settings[E.INVENTORY_URL.name] = self.profile.url(INVENTORY.name)
        if E.RATE_LIMIT_STORE_URL.name in names:
            # The store is always there; throttling itself is on only when the caller's shell sets
            # RATE_LIMIT_*_PER_SECOND (make up leaves it off, so benchmarks measure the service).
            store = RedisServer(self.profile)
            settings.update({
                E.RATE_LIMIT_STORE_URL.name: store.url,
                E.RATE_LIMIT_STORE_USER.name: GATEWAY_USER,
                E.RATE_LIMIT_STORE_PASSWORD.name: store.logins()[GATEWAY_USER].password,
            })
        if self.profile.name == "test":
            # The test run's own services are never throttled by a stray variable of the caller's shell.
            settings.update({variable.name: "0" for variable in THROTTLES if variable.name in names})
            settings.update(TEST_TRACING)
        if E.BILLING_URL.name in names:
            settings[E.BILLING_URL.name] = self.profile.url(BILLING.name)
        if E.ORDER_ID_KEY.name in names:
            settings[E.ORDER_ID_KEY.name] = order_id_key(self.profile.state_dir)
        if E.AUTH_ISSUER.name in names:
            # The gateway trusts the local Cognito emulator exactly as it trusts Cognito on AWS.
            settings.update(IdentityEmulator(self.profile).gateway_env())
        settings.update({key: value for key, value in self.profile.settings.items() if key in names})
        unknown = sorted(set(settings) - names)
        if unknown:
            raise LocalSystemError(f"{self.name} does not read {', '.join(unknown)} (contract.environment)")
        return settings

    def argv(self) -> list[str]:
        """The production command line (docs/containers.md)."""
        app = contract_service(self.name).wsgi_app
        return [str(gunicorn_executable()), "--config", "python:common.gunicorn_config", app]

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
                f"port {self.port} for {self.label} is taken by another program"
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
        started = read_pid(self.pid_file)
        while time.monotonic() < deadline:
            if self.pid() is None:
                how = exit_status(started)
                raise LocalSystemError(
                    f"{self.label} (pid {started}) exited during start-up{f' ({how})' if how else ''}; "
                    f"see {self.log_file}; its output:\n{tail(self.log_file, 25, log_offset(self.pid_file))}"
                )
            if self.is_ready():
                return
            time.sleep(0.2)
        raise LocalSystemError(
            f"{self.label} did not answer 200 on {self.url}/ready within {timeout:.0f} s; "
            f"see {self.log_file}:\n{tail(self.log_file, 25, log_offset(self.pid_file))}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM the gunicorn master (graceful: workers finish in-flight work), SIGKILL after ``timeout``."""
        return stop_recorded(self.pid(), self.pid_file, timeout)
