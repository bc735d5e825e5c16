"""The web edge as a part of the local system: started after the emulator, stopped with the rest.

The process (``python -m local_system.web_edge``) is standard library only, so it runs under whichever Python
runs ``make up``. Pid and log file live in ``.run/<profile>/web/``.
"""

from __future__ import annotations

import os
import sys

from local_system.parts import ServerPart
from local_system.processes import LocalSystemError, port_open, spawn, tail
from local_system.profiles import REPO_ROOT, Profile

START_TIMEOUT = 15


class WebEdge(ServerPart):
    """Start and stop the profile's web edge (the site and the emulated managed login)."""

    name = "web"
    title = "the web edge"
    process_marker = "local_system.web_edge"
    stop_timeout = 5

    def __init__(self, profile: Profile):
        self.profile = profile
        self.port = profile.web_port
        self.login_port = profile.web_login_port
        self.home = profile.state_dir / "web"
        self.pid_file = self.home / "web-edge.pid"
        self.log_file = self.home / "web-edge.log"
        self.url = f"http://127.0.0.1:{self.port}"

    def is_running(self) -> bool:
        """True when the process runs and both its ports accept connections."""
        return super().is_running() and port_open(self.login_port)

    def start(self) -> None:
        """Start the edge unless it runs; wait until both ports listen (needs the provisioned pool)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.pid() is not None:
            return
        self._check_ports_free(self.port, self.login_port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        argv = [sys.executable, "-m", "local_system.web_edge", "--profile", self.profile.name]
        spawned = spawn(argv, self.log_file, env, REPO_ROOT, self.pid_file)
        ready = lambda: port_open(self.port) and port_open(self.login_port)  # noqa: E731
        if not self._wait_ready(ready, START_TIMEOUT, spawned):
            raise LocalSystemError(f"the web edge did not start; see {self.log_file}:\n{tail(self.log_file, 15)}")
