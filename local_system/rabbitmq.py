"""A private RabbitMQ node: its own node name, ports, Erlang cookie, data, logs and config.

Everything lives in ``.run/<profile>/rabbitmq/`` and every RabbitMQ/Erlang setting the scripts read is given
explicitly, so the node never touches /var/lib/rabbitmq, /etc/rabbitmq, the system broker or the other
profile's node. The ``app`` user is created as the node's *default user* on first boot, so a ``guest`` user
never exists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from local_system.credentials import Credentials
from local_system.parts import ServerPart
from local_system.prereqs import rabbitmq_scripts_dir
from local_system.processes import LocalSystemError, is_alive, port_open, read_pid, spawn, tail, terminate, wait_for
from local_system.profiles import Profile

START_TIMEOUT = 90  # first boot on a slow CI machine (Erlang start + schema creation) takes 5-20 s


class RabbitMQServer(ServerPart):
    """Start, stop and administer the profile's private RabbitMQ node."""

    name = "rabbitmq"
    title = "RabbitMQ"
    process_marker = "rabbitmq-server"  # the start script's; the Erlang VM's is ``beam_marker``
    stop_timeout = 30

    def __init__(self, profile: Profile, credentials: Callable[[], Credentials]):
        self.profile = profile
        self._load_credentials = credentials
        self.port = profile.amqp_port
        self.home = profile.state_dir / "rabbitmq"
        self.pid_file = self.home / "rabbitmq-server.pid"  # the start script (our child)
        self.beam_pid_file = self.home / "beam.pid"  # the Erlang VM, written by RabbitMQ itself
        self.log_file = self.home / "log" / "rabbit.log"
        self.console_log = self.home / "console.log"
        self.config_file = self.home / "rabbitmq.conf"
        self.credentials_marker = self.home / "credentials.applied"
        self.beam_marker = f"-home {self.home}"

    @property
    def credentials(self) -> Credentials:
        """The generated passwords (read on first use, so inspecting status creates nothing)."""
        return self._load_credentials()

    def env(self) -> dict[str, str]:
        """Environment for rabbitmq-server and rabbitmqctl of this node (stray RABBITMQ_*/ERL_* dropped)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        dist = self.profile.rabbitmq_dist_port
        return {
            **base,
            # HOME holds the Erlang cookie: a private cookie means no other node or CLI can talk to this one.
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.profile.rabbitmq_nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist),
            # The CLI tools open their own distribution port; keep them next to ours, not on the shared default.
            "RABBITMQ_CTL_DIST_PORT_MIN": str(dist + 1),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(dist + 10),
            "ERL_EPMD_PORT": str(self.profile.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.config_file),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.home / "advanced.config"),
            # An empty env file instead of /etc/rabbitmq/rabbitmq-env.conf, which could rename the node.
            "RABBITMQ_CONF_ENV_FILE": str(self.home / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.beam_pid_file),
        }

    def _write_config(self) -> None:
        (self.home / "log").mkdir(parents=True, exist_ok=True)
        (self.home / "rabbitmq-env.conf").touch()
        # The management plugin: its HTTP API is how the broker's password rotates (as on Amazon MQ); the
        # Prometheus plugin: what the local Prometheus scrapes (queue depths for the backlog alerts).
        (self.home / "enabled_plugins").write_text("[rabbitmq_management,rabbitmq_prometheus].\n")
        login = self.credentials.rabbitmq
        user, password = login.user, login.password
        config = (
            "# Written by local_system on every start; edits are overwritten.\n"
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "distribution.listener.interface = 127.0.0.1\n"
            f"management.tcp.port = {self.profile.rabbitmq_management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            # No statistics collection: only the user API is used, and stats cost CPU on every node.
            "management_agent.disable_metrics_collector = true\n"
            f"prometheus.tcp.port = {self.profile.rabbitmq_prometheus_port}\n"
            "prometheus.tcp.ip = 127.0.0.1\n"
            # Per-queue depth on /metrics (the backlog and dead-letter rules need it); few queues here.
            "prometheus.return_per_object_metrics = true\n"
            # Created on first boot instead of guest, so guest never exists on this node.
            f"default_user = {user}\n"
            f"default_pass = {password}\n"
            "default_user_tags.administrator = true\n"
            "default_permissions.configure = .*\n"
            "default_permissions.read = .*\n"
            "default_permissions.write = .*\n"
            "loopback_users.guest = true\n"
            "log.console = false\n"
            "log.file = rabbit.log\n"
            "log.file.level = info\n"
        )
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(config)
        self.config_file.chmod(0o600)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of the start script, or of the Erlang VM if the script is gone; None when not running."""
        # Two processes, two pid files: the base class knows only the start script's.
        wrapper = super().pid()
        if wrapper is not None:
            return wrapper
        return self._beam_pid()

    def _beam_pid(self) -> int | None:
        """Pid of the node's Erlang VM (its own pid file), or None."""
        beam = read_pid(self.beam_pid_file)
        return beam if is_alive(beam, self.beam_marker) else None

    def start(self) -> None:
        """Start the node (if not running) and wait until it speaks AMQP."""
        scripts = rabbitmq_scripts_dir()
        if scripts is None:
            raise LocalSystemError("rabbitmq-server not found; run: apt-get install -y rabbitmq-server")
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if self.pid() is None:
            self._check_ports_free()
            first_boot = not (self.home / "mnesia").exists()
            spawned = spawn([str(scripts / "rabbitmq-server")], self.console_log, self.env(), self.home, self.pid_file)
            self._wait_until_ready(spawned)
            if first_boot:
                self.credentials_marker.write_text(self._credentials_digest())
        else:
            self._wait_until_ready()
        self._ensure_credentials()

    def _wait_until_ready(self, spawned: int | None = None) -> None:
        """Wait for an AMQP handshake; give up early only when the node's processes are gone.

        A process we just spawned is ours whatever its command line says at this instant (the start script
        hands over to the Erlang VM, which writes its own pid file only later), so it is checked by pid alone.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if amqp_handshake(self.port):
                return
            if self.pid() is None and not is_alive(spawned):
                break
            time.sleep(0.2)
        raise LocalSystemError(
            f"RabbitMQ did not become ready on port {self.port}; see {self.log_file} and {self.console_log}:\n"
            f"{tail(self.console_log, 15)}\n{tail(self.log_file, 15)}"
        )

    def _credentials_digest(self) -> str:
        secret = f"{self.credentials.rabbitmq.user}:{self.credentials.rabbitmq.password}"
        return hashlib.sha256(secret.encode()).hexdigest()

    def _ensure_credentials(self) -> None:
        """Re-apply the user from credentials.env when it changed since the node was created.

        rabbitmqctl costs a second or two per call, so this only runs when the recorded digest differs.
        """
        try:
            if self.credentials_marker.read_text() == self._credentials_digest():
                return
        except OSError:
            pass
        user, password = self.credentials.rabbitmq.user, self.credentials.rabbitmq.password
        self.ctl("add_user", user, password, check=False)
        self.ctl("change_password", user, password)
        self.ctl("set_user_tags", user, "administrator")
        self.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        self.ctl("delete_user", "guest", check=False)
        self.credentials_marker.write_text(self._credentials_digest())

    def record_applied(self) -> None:
        """The node already has credentials.env's login (a rotation set it): no rabbitmqctl at next start."""
        if self.credentials_marker.parent.exists():
            self.credentials_marker.write_text(self._credentials_digest())

    def forget_applied(self) -> None:
        """Make the next start re-apply credentials.env's login (a rotation is changing the password)."""
        self.credentials_marker.unlink(missing_ok=True)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``rabbitmqctl`` against this node (not the system one)."""
        scripts = rabbitmq_scripts_dir()
        result = subprocess.run(
            [str(scripts / "rabbitmqctl"), "-q", "-n", self.profile.rabbitmq_nodename, *args],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            # args may hold a password: report only the sub-command.
            raise LocalSystemError(f"rabbitmqctl {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the node gracefully (SIGTERM: the script runs an orderly shutdown), SIGKILL after ``timeout``."""
        # Not the base's: the start script and the VM may each be left, and the pid file stays (as before).
        timeout = self.stop_timeout if timeout is None else timeout
        wrapper = super().pid()
        if wrapper is not None:
            terminate(wrapper, timeout)
        # The VM alone (its start script was killed): stop it directly.
        beam = self._beam_pid()
        if beam is not None:
            terminate(beam, timeout)
        wait_for(lambda: not port_open(self.port), 10)
        return wrapper is not None or beam is not None

    def stop_epmd(self) -> None:
        """Stop the Erlang port mapper the node started on the profile's epmd port (only when unused)."""
        epmd = shutil.which("epmd") or next(iter(sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None)
        if epmd and port_open(self.profile.epmd_port):
            subprocess.run([str(epmd), "-kill"], env=self.env(), capture_output=True, check=False)

    def restart(self) -> None:
        """Stop and start the node; durable queues and persistent messages survive."""
        self.stop()
        self.start()


def amqp_handshake(port: int, timeout: float = 2.0) -> bool:
    """True when the broker answers an AMQP 0-9-1 protocol header with a Connection.Start method frame."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            frame_type = sock.recv(1)
    except OSError:
        return False
    return frame_type == b"\x01"
