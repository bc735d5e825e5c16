"""A private Prometheus (Debian's package) and PostgreSQL exporter: the local system's monitoring.

Everything lives in ``.run/<profile>/prometheus/``: the generated ``prometheus.yml``, the rules (a copy of
``monitoring/prometheus/rules.yml``, generated from the CloudWatch alarm table; the test profile shortens
every ``for:``), the TSDB, the log and ``targets/services.json``, the file the local system rewrites when a
service copy starts or stops (``make scale``), so Prometheus follows the copies without a restart.

Scraped: every service's ``/metrics``, RabbitMQ's Prometheus plugin (per-queue depth) and PostgreSQL through
``prometheus-postgres-exporter``, which logs in as the read-only ``monitoring`` role (pg_monitor). Both
processes listen on 127.0.0.1 only. Prometheus is spawned early (:meth:`PrometheusServer.launch`) and waited
for (``/-/ready``) last, so its start overlaps the slower parts'.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable

from local_system.credentials import Login
from local_system.parts import ServerPart
from local_system.processes import LocalSystemError, http_status, is_alive, port_open, read_pid, spawn, tail
from local_system.profiles import REPO_ROOT, SERVICES, Profile

START_TIMEOUT = 30
#: The rules, generated from stacks/alarm_table.py by scripts/prometheus_rules.py.
RULES_SOURCE = REPO_ROOT / "monitoring" / "prometheus" / "rules.yml"
_FOR_LINE = re.compile(r"^(\s+for: ).*$", re.MULTILINE)


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise LocalSystemError(f"{name} not found; run: apt-get install -y {package}")
    return found


def _write_private(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a rename), so Prometheus never reads half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


class PostgresExporter(ServerPart):
    """prometheus-postgres-exporter on the profile's port, logged in as the monitoring role."""

    name = "pg-exporter"
    title = "the exporter"

    def __init__(self, profile: Profile, login: Callable[[], Login]):
        self.profile = profile
        self._login = login
        self.port = profile.postgres_exporter_port
        self.home = profile.state_dir / "prometheus"
        self.pid_file = self.home / "postgres-exporter.pid"
        self.log_file = self.home / "postgres-exporter.log"

    def pid(self) -> int | None:
        """Pid of our exporter, or None."""
        # Two markers: the binary's name differs between packagings (postgres_exporter, postgres-exporter).
        pid = read_pid(self.pid_file)
        return pid if is_alive(pid, "postgres_exporter") or is_alive(pid, "postgres-exporter") else None

    def start(self) -> None:
        """Start the exporter (if not running) and wait until it listens."""
        binary = _binary("prometheus-postgres-exporter", "prometheus-postgres-exporter")
        self.home.mkdir(parents=True, exist_ok=True)
        spawned = None
        if self.pid() is None:
            self._check_ports_free()
            login = self._login()
            # The DSN (with the password) goes in the environment, never on the command line (ps shows that).
            env = {
                **os.environ,
                "DATA_SOURCE_NAME": f"postgresql://{login.user}:{login.password}@127.0.0.1:"
                f"{self.profile.postgres_port}/postgres?sslmode=disable",
            }
            argv = [binary, f"--web.listen-address=127.0.0.1:{self.port}"]
            spawned = spawn(argv, self.log_file, env, self.home, self.pid_file)
        if not self._wait_ready(lambda: port_open(self.port), START_TIMEOUT, spawned):
            raise LocalSystemError(
                f"the PostgreSQL exporter did not start; see {self.log_file}:\n{tail(self.log_file)}"
            )


class PrometheusServer(ServerPart):
    """Start and stop the profile's Prometheus; keep its scrape targets in step with the running services."""

    name = "prometheus"
    title = "Prometheus"

    def __init__(self, profile: Profile):
        self.profile = profile
        self.port = profile.prometheus_port
        self.home = profile.state_dir / "prometheus"
        self.pid_file = self.home / "prometheus.pid"
        self.log_file = self.home / "prometheus.log"
        self.config_file = self.home / "prometheus.yml"
        self.rules_file = self.home / "rules.yml"
        self.targets_file = self.home / "targets" / "services.json"
        self.process_marker = str(self.config_file)  # its command line names our prometheus.yml
        self._spawned: int | None = None

    @property
    def url(self) -> str:
        """Prometheus's web UI and HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    # -- configuration -------------------------------------------------------------------------------------
    def rules(self) -> str:
        """The repository's rules, with the profile's ``for:`` when it sets one (thresholds unchanged)."""
        text = RULES_SOURCE.read_text()
        if self.profile.alert_for:
            text = _FOR_LINE.sub(lambda match: f"{match.group(1)}{self.profile.alert_for}", text)
        return text

    def config(self) -> str:
        """prometheus.yml: scrape jobs for the broker, the database exporter and (via a file) the services."""
        interval = self.profile.prometheus_interval
        static = {
            "rabbitmq": self.profile.rabbitmq_prometheus_port,
            "postgres": self.profile.postgres_exporter_port,
            "prometheus": self.port,
        }
        lines = [
            "# Written by local_system on every start; edits are overwritten.",
            "global:",
            f"  scrape_interval: {interval}",
            f"  evaluation_interval: {interval}",
            f"  scrape_timeout: {interval}",
            "rule_files:",
            f"  - {json.dumps(str(self.rules_file))}",
            "scrape_configs:",
            # One job per service: the labels the rules select on (job="billing"), whatever copy it is.
            "  - job_name: services",
            "    file_sd_configs:",
            f"      - files: [{json.dumps(str(self.targets_file))}]",
            "        refresh_interval: 5s",
            "    relabel_configs:",
            "      - source_labels: [service]",
            "        target_label: job",
        ]
        for job, port in static.items():
            lines += [f"  - job_name: {job}", "    static_configs:", f'      - targets: ["127.0.0.1:{port}"]']
        return "\n".join(lines) + "\n"

    def write_targets(self, copies: dict[str, list[int]] | None = None) -> None:
        """Rewrite the services' scrape targets: ``copies`` maps a service to the ports of its copies (default:
        each service's own port). Prometheus re-reads the file by itself within seconds."""
        if copies is None:
            copies = {name: [self.profile.service_ports[name]] for name in SERVICES}
        groups = [
            {"targets": [f"127.0.0.1:{port}" for port in ports], "labels": {"service": name}}
            for name, ports in copies.items()
        ]
        self.targets_file.parent.mkdir(parents=True, exist_ok=True)
        _write_private(self.targets_file, json.dumps(groups, indent=2) + "\n")

    # -- lifecycle -----------------------------------------------------------------------------------------
    def launch(self) -> None:
        """Write config and rules; spawn Prometheus unless it runs (then reload it); do not wait."""
        binary = _binary("prometheus", "prometheus")
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        _write_private(self.rules_file, self.rules())
        _write_private(self.config_file, self.config())
        if not self.targets_file.exists():
            self.write_targets()
        pid = self.pid()
        if pid is not None:
            os.kill(pid, 1)  # SIGHUP: re-read prometheus.yml and the rules (a pull may have changed them)
            return
        self._check_ports_free()
        argv = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--log.format=json",
        ]
        self._spawned = spawn(argv, self.log_file, dict(os.environ), self.home, self.pid_file)

    def start(self) -> None:
        """Start Prometheus (if not running) and wait until ``/-/ready`` answers 200."""
        self.launch()
        if not self._wait_ready(lambda: http_status(f"{self.url}/-/ready", timeout=1) == 200, START_TIMEOUT,
                                self._spawned):
            raise LocalSystemError(
                f"Prometheus did not become ready on {self.url}; see {self.log_file}:\n{tail(self.log_file, 15)}"
            )
