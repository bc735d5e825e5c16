"""A private redis-server (Debian's package): the gateway's shared rate-limit counters, like ElastiCache on AWS.

Everything lives in ``.run/<profile>/redis/``: its config (mode 0600: it holds the passwords), its log and the
generated logins. Like on ElastiCache, nobody gets in without a password: the ``default`` user is off, the
gateway's user has exactly the access string of ``contract.limits.RATE_LIMIT_STORE_ACCESS`` (the one
ElastiCache gets, so a script command it lacks fails here first), and an ``admin`` user exists for tests and
``redis-cli`` debugging only. Nothing is persisted: the counters are worth nothing after a restart.

Cluster mode, like ElastiCache Serverless (which exists only cluster-mode enabled): one node that owns all
16384 hash slots, so the gateway talks to it with the same cluster client as on AWS (``CLUSTER SLOTS`` to
learn the topology, no ``SELECT``). The part is ready once ``CLUSTER INFO`` says ``cluster_state:ok``; a
master stays ``fail`` for its first ~2 s (Redis waits before it serves writes after a restart), so
:meth:`RedisServer.launch` lets the local system spawn it before the slower parts and wait for it later.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time

from contract.limits import RATE_LIMIT_STORE_ACCESS
from local_system.credentials import Login, new_password
from local_system.parts import ServerPart
from local_system.processes import LocalSystemError, is_alive, port_open, spawn, tail, wait_for
from local_system.profiles import Profile

START_TIMEOUT = 20
#: Hash slots of a Redis Cluster: the one local node serves them all.
HASH_SLOTS = 16384
#: The user the gateway logs in with (the same name as the ElastiCache user on AWS).
GATEWAY_USER = "gateway"
ADMIN_USER = "admin"


def redis_server_binary() -> str | None:
    """Path of redis-server (Debian: /usr/bin/redis-server), or None."""
    return shutil.which("redis-server")


class RedisServer(ServerPart):
    """Start and stop the profile's private redis-server; hand out its logins."""

    name = "redis"
    title = "redis-server"
    process_marker = "redis-server"

    def __init__(self, profile: Profile):
        self.profile = profile
        self.port = profile.redis_port
        self.home = profile.state_dir / "redis"
        self.pid_file = self.home / "redis-server.pid"
        self.log_file = self.home / "redis.log"
        self.config_file = self.home / "redis.conf"
        self.logins_file = self.home / "logins.json"
        self.nodes_file = self.home / "nodes.conf"
        self.cluster_port = profile.redis_cluster_port
        self._spawned: int | None = None  # pid of the server this object spawned, while it may not answer yet

    @property
    def url(self) -> str:
        """The store's URL, without credentials (RATE_LIMIT_STORE_URL)."""
        return f"redis://127.0.0.1:{self.port}"

    def logins(self) -> dict[str, Login]:
        """The gateway's and the admin's logins, generated on first use (file mode 0600)."""
        try:
            values = json.loads(self.logins_file.read_text())
        except (OSError, ValueError):
            values = {}
        if set(values) != {GATEWAY_USER, ADMIN_USER}:
            values = {GATEWAY_USER: new_password(), ADMIN_USER: new_password()}
            self.home.mkdir(parents=True, exist_ok=True)
            temporary = self.logins_file.with_name(f".{self.logins_file.name}.{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(values, handle)
            os.replace(temporary, self.logins_file)
        return {user: Login(user, password) for user, password in values.items()}

    def _write_config(self) -> None:
        logins = self.logins()
        config = (
            "# Written by local_system on every start; edits are overwritten.\n"
            f"bind 127.0.0.1\nport {self.port}\nprotected-mode yes\ndaemonize no\n"
            f'dir "{self.home}"\nlogfile ""\n'
            # Counters only: nothing worth a disk write.
            'save ""\nappendonly no\n'
            # A one-node cluster (ElastiCache Serverless is cluster-mode only); its bus listens on 127.0.0.1 too.
            f'cluster-enabled yes\ncluster-config-file "{self.nodes_file}"\ncluster-port {self.cluster_port}\n'
            "user default off\n"
            f"user {GATEWAY_USER} reset >{logins[GATEWAY_USER].password} {RATE_LIMIT_STORE_ACCESS}\n"
            f"user {ADMIN_USER} reset on >{logins[ADMIN_USER].password} ~* &* +@all\n"
        )
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(config)

    def launch(self) -> None:
        """Spawn the server unless it runs; do not wait (:meth:`start` waits)."""
        binary = redis_server_binary()
        if binary is None:
            raise LocalSystemError("redis-server not found; run: apt-get install -y redis-server")
        self.home.mkdir(parents=True, exist_ok=True)
        if self.pid() is None:
            self._check_ports_free(self.port, self.cluster_port)
            self._write_config()
            self._spawned = spawn(
                [binary, str(self.config_file)], self.log_file, dict(os.environ), self.home, self.pid_file
            )

    def start(self) -> None:
        """Start the server (if not running), give the node every slot, wait until the cluster is ok."""
        self.launch()
        admin = self.logins()[ADMIN_USER]
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if answers_ping(self.port):
                info = cluster_info(self.port, admin)
                if info.get("cluster_state") == "ok":
                    return
                if info.get("cluster_slots_assigned") == "0":  # a new node (a restart keeps them in nodes.conf)
                    command(self.port, admin, "CLUSTER", "ADDSLOTSRANGE", "0", str(HASH_SLOTS - 1))
            # By pid alone: redis rewrites its command line at start, so the marker may be absent for a moment.
            elif not is_alive(self._spawned or self.pid()):
                break
            time.sleep(0.05)
        raise LocalSystemError(
            f"redis-server did not become ready (cluster_state:ok) on port {self.port}; see {self.log_file}:\n"
            f"{tail(self.log_file, 15)}"
        )

    def stop(self, timeout: float | None = None) -> bool:
        """SIGTERM (redis exits at once: nothing to save), SIGKILL after ``timeout``."""
        # Also waits for the port: a restart right after must not find it still held.
        stopped = super().stop(timeout)
        wait_for(lambda: not port_open(self.port), 5)
        return stopped


def answers_ping(port: int, timeout: float = 1.0) -> bool:
    """True when a Redis server on ``port`` answers (an unauthenticated PING gets NOAUTH: it is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def command(port: int, login: Login, *args: str, timeout: float = 2.0) -> bytes:
    """Run one command as ``login`` (stdlib only: RESP by hand); the reply's first line or bulk payload.

    An error reply raises LocalSystemError. Enough for the few admin commands the start needs."""
    def request(*words: str) -> bytes:
        parts = [f"*{len(words)}\r\n".encode()]
        for word in words:
            data = word.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request("AUTH", login.user, login.password) + request(*args))
        reader = sock.makefile("rb")
        replies = []
        for _ in range(2):
            line = reader.readline().rstrip(b"\r\n")
            if line.startswith(b"-"):
                raise LocalSystemError(f"redis-server refused {args[0]}: {line[1:].decode(errors='replace')}")
            if line.startswith(b"$"):
                length = int(line[1:])
                line = reader.read(length + 2)[:-2] if length >= 0 else b""
            replies.append(line)
    return replies[1]


def cluster_info(port: int, login: Login) -> dict[str, str]:
    """``CLUSTER INFO`` as a mapping (cluster_state, cluster_slots_assigned, ...); empty when it fails."""
    try:
        text = command(port, login, "CLUSTER", "INFO").decode()
    except (OSError, LocalSystemError, ValueError):
        return {}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
