"""What every private server part of the local system shares: its pid, whether it runs, stop, the port check.

A part (PostgreSQL, RabbitMQ, redis-server, Prometheus, the PostgreSQL exporter, the Cognito emulator) sets
``name``, ``title``, ``port``, ``home``, ``pid_file``, ``log_file`` and ``process_marker`` and writes its own
``start``; it overrides ``pid`` or ``stop`` only where its server works differently.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from local_system.processes import LocalSystemError, is_alive, port_open, port_released, read_pid, terminate


class ServerPart:
    """Base of a private server process recorded in ``pid_file`` and listening on ``port``."""

    name: str
    #: How messages name the part ("cannot start PostgreSQL").
    title: str
    port: int
    home: Path
    pid_file: Path
    log_file: Path
    #: Text the process's command line must contain: a recycled pid cannot pass for ours.
    process_marker: str | None = None
    #: Seconds ``stop`` waits after SIGTERM before it sends SIGKILL.
    stop_timeout: float = 10

    def pid(self) -> int | None:
        """Pid of the part's process, or None when it does not run."""
        pid = read_pid(self.pid_file)
        return pid if is_alive(pid, self.process_marker) else None

    def is_running(self) -> bool:
        """True when the part's process runs and accepts connections on its port."""
        return self.pid() is not None and port_open(self.port)

    def stop(self, timeout: float | None = None) -> bool:
        """SIGTERM, SIGKILL after ``timeout`` (default ``stop_timeout``); forget the pid file. True when it ran."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, self.stop_timeout if timeout is None else timeout)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None

    def _check_ports_free(self, *ports: int) -> None:
        """Refuse to start when another program holds ``ports`` (default: the part's port)."""
        for port in ports or (self.port,):
            if not port_released(port):
                raise LocalSystemError(f"port {port} is taken by another program; cannot start {self.title}")

    def _wait_ready(self, ready: Callable[[], bool], timeout: float, spawned: int | None = None) -> bool:
        """Poll ``ready()`` for up to ``timeout`` seconds; False early once the process is gone.

        A process just ``spawned`` is checked by pid alone: its command line may not show the marker yet.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return True
            if not is_alive(spawned or self.pid()):
                return False
            time.sleep(0.05)
        return False
