"""``LocalSystem``: the whole local system of one profile, used by the CLI (``make up``) and by the tests.

(Over 250 lines: the one facade every command, test fixture and tool calls; each method is a few lines that
delegate to a part's own module: postgres, rabbitmq, redis_server, prometheus, services, identity.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from local_system import prereqs
from local_system.credentials import BILLING_SHARD_DATABASES, Credentials, load_or_create, store_password
from local_system.identity.emulator import IdentityEmulator
from local_system.invoicer_part import Invoicer
from local_system.poster_pipeline import PosterPipeline
from local_system.poster_resources import provision as provision_poster_resources
from local_system.postgres import PostgresServer
from local_system.processes import LocalSystemError, http_status, process_tree
from local_system.profiles import DATABASES, INFRASTRUCTURE, MAX_REPLICAS, SERVICES, Profile, get_profile
from local_system.prometheus import PostgresExporter, PrometheusServer
from local_system.rabbitmq import RabbitMQServer
from local_system.redis_server import RedisServer
from local_system.saga_resources import provision as provision_saga_resources
from local_system.secret_store import SecretsApi, provision
from local_system.services import READY_TIMEOUT, ServiceProcess
from local_system.web_part import WebEdge

PARTS = INFRASTRUCTURE + SERVICES


@dataclass(frozen=True)
class PartStatus:
    """One row of ``status``."""

    part: str
    pid: int | None
    port: int
    state: str


class LocalSystem:
    """PostgreSQL, RabbitMQ and the three services of one profile (``dev`` or ``test``).

    Every method is idempotent: starting what runs, or stopping what is stopped, does nothing.
    """

    def __init__(self, profile: str | Profile | None = None):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.state_dir = self.profile.state_dir
        self.postgres = PostgresServer(self.profile, self._load_credentials)
        self.rabbitmq = RabbitMQServer(self.profile, self._load_credentials)
        self.redis = RedisServer(self.profile)
        self.identity = IdentityEmulator(self.profile, on_started=self._provision_emulator)
        self.posters = PosterPipeline(self.profile)
        self.invoicer = Invoicer(self.profile)
        self.postgres_exporter = PostgresExporter(self.profile, self.postgres.monitoring_login)
        self.prometheus = PrometheusServer(self.profile)
        self.web = WebEdge(self.profile)
        self.services = {name: ServiceProcess(name, self.profile) for name in SERVICES}
        self._credentials: Credentials | None = None
        self._lock_depth = 0
        self._lock_file = None

    # -- credentials and locking -------------------------------------------------------------------------
    @property
    def _credentials_file(self):
        return self.state_dir / "credentials.env"

    def _load_credentials(self) -> Credentials:
        """Read once per process; a rotation (``record_password``) replaces the cached copy."""
        if self._credentials is None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._credentials = load_or_create(self._credentials_file)
        return self._credentials

    def record_password(self, name: str, password: str) -> None:
        """Keep a rotated password of credential ``name`` in credentials.env (and in this process)."""
        with self._locked():
            self._credentials = store_password(self._credentials_file, name, password)
            if name == "rabbitmq":
                self.rabbitmq.record_applied()

    def _provision_emulator(self) -> None:
        """What lives in the emulator's memory besides the user pool, (re-)created at its every start: the
        services' secrets (their logins), the poster pipeline's buckets and queues, the saga's bucket."""
        provision(self.secrets_api(), self.profile, self.credentials)
        provision_poster_resources(self.identity.url)
        provision_saga_resources(self.identity.url)

    def secrets_api(self) -> SecretsApi:
        """The Secrets Manager emulator (the moto server that also emulates Cognito)."""
        return SecretsApi(self.identity.url)

    def rotate_credentials(self, name: str, pause: float = 0.0, progress=None, after_step=None):
        """Rotate one credential (inventory, billing, rabbitmq) like AWS does: see ``local_system.rotation``."""
        from local_system.rotation import rotate  # rotation imports this module (type hints)

        return rotate(self, name, pause=pause, progress=progress, after_step=after_step)

    @property
    def credentials(self) -> Credentials:
        """The generated passwords (created on first use)."""
        return self._load_credentials()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise state changes between processes (two `make up`s at once, or make up + pytest)."""
        if self._lock_depth == 0:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.state_dir / ".lock", "w")  # closed in the finally below
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_file is not None:
                self._lock_file.close()  # releases the lock
                self._lock_file = None

    @contextlib.contextmanager
    def exclusive_use(self, timeout: float = 500, waiting=None) -> Iterator[None]:
        """Hold the profile's ports for a whole test session, so two concurrent runs never restart each
        other's servers; a second run waits (up to ``timeout`` seconds) until the first one is done.

        The lock is machine-wide (in the temp folder, named after the ports), because two checkouts of the
        repository share the same ports.
        """
        name = f"local-system-{self.profile.name}-{self.profile.postgres_port}.lock"
        # Read-only + O_CREAT: any user can lock a file another user created (flock needs no write access).
        fd = os.open(os.path.join(tempfile.gettempdir(), name), os.O_RDONLY | os.O_CREAT, 0o644)
        system = f"the '{self.profile.name}' local system"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        waited = f" (waited {timeout:.0f} s)" if timeout else ""
                        raise LocalSystemError(
                            f"{system} is in use by another run{waited}; try again when it has finished"
                        ) from None
                    if waiting:
                        waiting(f"another run is using {system}; waiting for it to finish")
                        waiting = None  # say it once
                    time.sleep(1)
            yield
        finally:
            os.close(fd)  # releases the lock (the kernel does the same if this process dies)

    # -- starting ----------------------------------------------------------------------------------------
    def start_infrastructure(self, progress=None) -> None:
        """Install (as root) and start PostgreSQL, RabbitMQ and the Cognito emulator; create role, user,
        databases and the user pool."""
        with self._locked():
            prereqs.ensure_servers()
            running = {server.name: server.is_running() for server in self._infrastructure()}
            # redis-server (cluster mode) serves nothing for its first ~2 s: spawned first, that wait overlaps
            # the database's and the broker's start instead of adding to it.
            self.redis.launch()
            self.prometheus.launch()  # ~1 s to open its TSDB and load the rules: overlapped the same way
            for server in self._infrastructure():
                self._timed(progress, server.name, server.port, server.start, running[server.name])

    def _infrastructure(self):
        """The infrastructure parts in start order."""
        return (
            self.postgres, self.rabbitmq, self.redis, self.identity, self.posters, self.invoicer, self.web,
            self.postgres_exporter, self.prometheus,
        )

    def token(self) -> str:
        """A fresh access token of the demo user (all permissions) from the Cognito emulator."""
        return self.identity.token()

    def start_service(self, name: str, wait: bool = True) -> None:
        """Start one service (or postgres/rabbitmq) unless it runs; by default wait until it is ready."""
        with self._locked():
            if name in INFRASTRUCTURE:
                self._part(name).start()
                return
            self.service(name).start()
        if wait:
            self.wait_ready(name)

    def up(self, progress=None, timeout: float = READY_TIMEOUT) -> dict[str, str]:
        """Start everything that is not running, wait until every service is ready; return the URLs."""
        with self._locked():
            self.start_infrastructure(progress)
            started = {name: self.service(name).start() for name in SERVICES}
            self.sync_scrape_targets()
            for name in SERVICES:
                service = self.service(name)
                self._timed(progress, name, service.port, lambda s=service: s.wait_ready(timeout), not started[name])
        return self.urls()

    @staticmethod
    def _timed(progress, name: str, port: int, action, already: bool) -> None:
        began = time.monotonic()
        action()
        if progress:
            how = "already running" if already else f"ready in {time.monotonic() - began:.1f} s"
            progress(f"{name:<10} 127.0.0.1:{port:<6} {how}")

    def wait_ready(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until a service's ``/ready`` answers 200 (infrastructure parts: until they accept clients)."""
        if name in INFRASTRUCTURE:
            self._part(name).start()  # idempotent; waits for readiness
            return
        self.service(name).wait_ready(timeout)

    # -- scaling -----------------------------------------------------------------------------------------
    def replicas(self, name: str) -> list[ServiceProcess]:
        """The service and its extra copies that have a pid file (running, or left by a killed copy)."""
        service = self.service(name)
        extra = []
        for replica in range(2, MAX_REPLICAS + 1):
            if name in self.profile.replica_ports:
                copy = ServiceProcess(name, self.profile, replica)
                if copy.pid_file.exists():
                    extra.append(copy)
        return [service, *extra]

    def scale(self, name: str, replicas: int, progress=None, timeout: float = READY_TIMEOUT) -> list[ServiceProcess]:
        """Run exactly ``replicas`` copies of a service (1 = just the service): start the missing ones and wait
        until they are ready, stop the ones above the count. Returns the copies that run."""
        if replicas < 1:
            raise LocalSystemError(f"replicas must be at least 1, got {replicas}")
        wanted = [ServiceProcess(name, self.profile, replica) for replica in range(1, replicas + 1)]
        wanted[0] = self.service(name)
        with self._locked():
            self.start_infrastructure()
            for copy in self.replicas(name)[1:]:
                if copy.replica > replicas:
                    copy.stop()
                    copy.pid_file.unlink(missing_ok=True)
                    if progress:
                        progress(f"{copy.label:<10} stopped")
            started = {copy.label: copy.start() for copy in wanted}
            for copy in wanted:
                ready = copy.wait_ready
                self._timed(progress, copy.label, copy.port, lambda r=ready: r(timeout), not started[copy.label])
            self.sync_scrape_targets()
        return wanted

    def sync_scrape_targets(self) -> None:
        """Point Prometheus at every copy of every service (a stopped one stays a target: it shows as down)."""
        self.prometheus.write_targets({name: [copy.port for copy in self.replicas(name)] for name in SERVICES})

    # -- stopping ----------------------------------------------------------------------------------------
    def stop_service(self, name: str) -> None:
        """Stop one service (or postgres/rabbitmq) gracefully."""
        with self._locked():
            self._part(name).stop()

    def restart_rabbitmq(self) -> None:
        """Stop and start the broker (services stay up and must reconnect); durable queues survive."""
        with self._locked():
            self.rabbitmq.restart()

    def down(self, progress=None) -> None:
        """Stop everything this profile started: services first, then the broker, then the database."""
        with self._locked():
            for name in reversed(SERVICES):
                for copy in reversed(self.replicas(name)):
                    if copy.stop() and progress:
                        progress(f"{copy.label:<10} stopped")
                    if copy.replica > 1:
                        copy.pid_file.unlink(missing_ok=True)
            for server in reversed(self._infrastructure()):
                if server.pid() is not None:
                    server.stop()
                    if progress:
                        progress(f"{server.name:<10} stopped")
            self.rabbitmq.stop_epmd()

    def reset(self, progress=None) -> None:
        """Stop everything and delete the profile's state (databases, broker data, credentials, logs).

        Refuses while a test session holds the profile (see ``exclusive_use``) instead of pulling its servers away.
        """
        with self.exclusive_use(timeout=0), self._locked():
            self.down(progress)
            link = self.postgres.link
            if link.is_symlink():  # the cluster lives outside the repository (see PostgresServer._create_home)
                shutil.rmtree(link.resolve(), ignore_errors=True)
                link.unlink()
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- inspection --------------------------------------------------------------------------------------
    def service(self, name: str) -> ServiceProcess:
        """The named service (inventory, billing, gateway)."""
        try:
            return self.services[name]
        except KeyError:
            raise LocalSystemError(f"unknown service {name!r}; use one of: {', '.join(SERVICES)}") from None

    def _part(self, name: str):
        for server in self._infrastructure():
            if server.name == name:
                return server
        if name in SERVICES:
            return self.services[name]
        raise LocalSystemError(f"unknown part {name!r}; use one of: {', '.join(PARTS)}")

    def status(self) -> list[PartStatus]:
        """PID, port and state of every part."""
        rows = []
        for server in self._infrastructure():
            pid = server.pid()
            rows.append(PartStatus(server.name, pid, server.port, "running" if server.is_running() else "stopped"))
        for name in SERVICES:
            for service in self.replicas(name):
                pid = service.pid()
                if pid is None:
                    state = "stopped"
                else:
                    code = http_status(f"{service.url}/ready")
                    state = "ready" if code == 200 else f"not ready ({code or 'no answer'})"
                rows.append(PartStatus(service.label, pid, service.port, state))
        return rows

    def process_ids(self, name: str) -> list[int]:
        """Pids of one part's processes, leader first: a service's gunicorn master (from its pid file) and its
        workers, PostgreSQL's postmaster and backends, RabbitMQ's start script and Erlang VM; [] when stopped."""
        return process_tree(self._part(name).pid())

    def urls(self) -> dict[str, str]:
        """Base URL of every service."""
        return {name: self.profile.url(name) for name in SERVICES}

    def web_url(self) -> str:
        """The local web front end (the web edge's site)."""
        return self.web.url

    def web_login(self) -> tuple[str, str]:
        """User name and password the web front end's sign-in accepts (the demo user's; a secret)."""
        pool = self.identity.saved_pool()
        if pool is None:
            raise LocalSystemError("the emulated user pool is not provisioned yet; run: make up")
        return pool.username, pool.password

    def prometheus_url(self) -> str:
        """The local Prometheus (graphs, targets, alerts)."""
        return self.prometheus.url

    def service_env(self, name: str) -> dict[str, str]:
        """The environment a service is started with (contains passwords)."""
        return self.service(name).env()

    def database_dsn(self, database: str) -> str:
        """libpq DSN for ``movies_db``, ``billing_db`` or a billing shard's database (``billing_db_shard_1``) as its
        owner's role over TCP (the current password)."""
        if database not in (*DATABASES, *BILLING_SHARD_DATABASES):
            raise LocalSystemError(f"unknown database {database!r}; use one of: {', '.join(DATABASES)}")
        return self.postgres.dsn(database)

    def amqp_params(self) -> dict[str, object]:
        """Broker connection settings (``pika.ConnectionParameters(**...)`` minus credentials object)."""
        return {
            "host": "127.0.0.1",
            "port": self.profile.amqp_port,
            "virtual_host": "/",
            "username": self.credentials.rabbitmq.user,
            "password": self.credentials.rabbitmq.password,
        }

    def log_files(self) -> dict[str, os.PathLike]:
        """Log file of every part."""
        files = {part.name: part.log_file for part in self._infrastructure()}
        files.update({name: self.service(name).log_file for name in SERVICES})
        return files
