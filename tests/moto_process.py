"""A private moto server for the tests that need an emulator of their own (not the local system's)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on right now: a private server needs no fixed port, and so never collides with
    another run's (the local systems' servers keep their fixed ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server(port: int, log: Path, environment: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``moto_server`` on 127.0.0.1:``port`` with dummy keys (never the caller's AWS settings) plus
    ``environment``; yield its URL once it listens; stop it at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", **(environment or {}))
    moto = Path(sys.executable).with_name("moto_server")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert process.poll() is None, f"moto_server exited (port {port} taken?):\n{log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"moto_server did not listen:\n{log.read_text()[-2000:]}"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
