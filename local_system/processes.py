"""Small process helpers: pid files, liveness, graceful stop, waiting for ports and URLs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class LocalSystemError(RuntimeError):
    """Something the user has to act on; the message says what (and which log file to read)."""


def read_pid(pid_file: Path) -> int | None:
    """Return the pid stored in ``pid_file``, or None when the file is absent or garbled."""
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_alive(pid: int | None, marker: str | None = None) -> bool:
    """True when ``pid`` runs (and, if given, its command line contains ``marker``).

    The marker guards against a stale pid file whose pid was reused by an unrelated process.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":  # a zombie has exited; its parent just has not reaped it yet
            return False
        if marker is not None:
            return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return marker is None
    return True


def parent_pid(stat_text: str) -> int:
    """The parent pid (4th field) of a ``/proc/PID/stat`` line; the command name in parentheses may hold spaces."""
    return int(stat_text.rsplit(")", 1)[1].split()[1])


def process_tree(pid: int | None) -> list[int]:
    """``pid`` and every process descended from it (parent links in /proc), ``pid`` first; [] when not running.

    This is how the benchmark finds a gunicorn master's workers or PostgreSQL's backends: from the pid the
    local system recorded, never by matching process names (another checkout's services have the same names).
    """
    if not pid or not Path(f"/proc/{pid}").exists():
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            children.setdefault(parent_pid((entry / "stat").read_text()), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
    tree, queue = [pid], [pid]
    while queue:
        for child in sorted(children.get(queue.pop(0), ())):
            tree.append(child)
            queue.append(child)
    return tree


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM ``pid`` and wait up to ``timeout`` seconds; then SIGKILL its whole process group.

    Only the leader gets SIGTERM: gunicorn's master and RabbitMQ's start script run the orderly shutdown of
    their children themselves. SIGKILL goes to the group so no orphaned worker keeps a port.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    if wait_for(lambda: not is_alive(pid), timeout):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not is_alive(pid), 5)


def stop_recorded(pid: int | None, pid_file: Path, timeout: float) -> bool:
    """Stop ``pid`` (see :func:`terminate`) and forget its ``pid_file``; False when it was not running (None)."""
    if pid is None:
        return False
    terminate(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return True


def wait_for(condition, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_released(port: int, timeout: float = 5.0) -> bool:
    """True when nothing listens on ``port``, waiting up to ``timeout`` seconds for it to be freed.

    The grace period covers a process that was just killed: its children (gunicorn workers) notice the
    dead parent and exit within a second or two, releasing the socket.
    """
    return wait_for(lambda: not port_open(port), timeout, interval=0.2)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Return the HTTP status of GET ``url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed http://127.0.0.1 URLs
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def spawn(argv: list[str], log_file: Path, env: dict[str, str], cwd: Path, pid_file: Path) -> int:
    """Start ``argv`` in the background in its own session, output appended to ``log_file``; return its pid.

    Its own session means it outlives the ``make up`` that started it and can be stopped as a group. The pid
    file also records where this process's output starts in ``log_file`` (:func:`log_offset`), so a start-up
    failure shows this process's lines, not its predecessor's.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        offset = log.tell()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid} {offset}\n")
    return process.pid


def log_offset(pid_file: Path) -> int:
    """Where the recorded process's output starts in its log (0 when the pid file does not say)."""
    try:
        return int(pid_file.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def exit_status(pid: int | None) -> str:
    """How ``pid`` ended when it was a child of this process ("exit status 3", "killed by signal 9"); '' when
    it still runs, was not ours, or was already reaped."""
    if not pid:
        return ""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return ""
    if waited == 0:
        return ""
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def tail(path: Path, lines: int = 40, start: int = 0) -> str:
    """Return the last ``lines`` lines of a text file after byte ``start`` ('' when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(start, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
