"""wrk, the compiled load generator: install it, build its command line, read its report.

wrk (Debian package ``wrk``) costs far less CPU per request than any Python client, so what the benchmark
measures is the services, not the client. Parsing is kept apart from running so it can be unit-tested.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

APT_PACKAGE = "wrk"
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class BenchError(RuntimeError):
    """Something prevents a trustworthy measurement; the message says what."""


def ensure_installed() -> str:
    """Path of wrk; installed with apt-get when missing and we are root (else say the command to run)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError(
            "wrk is not installed; install it, then run this again:\n"
            f"    sudo apt-get update && sudo apt-get install -y {APT_PACKAGE}"
        )
    print(f"installing {APT_PACKAGE} with apt-get (once per machine) ...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", APT_PACKAGE]):
        subprocess.run(argv, check=True, env=env, stdin=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get finished but wrk is still not on PATH")
    return found


@dataclass(frozen=True)
class Load:
    """How hard and how long wrk pushes: threads, connections, seconds."""

    threads: int = 2
    connections: int = 32
    seconds: int = 10


def check_local(url: str) -> None:
    """Refuse any target but this machine's loopback address: the benchmark must never load someone else."""
    if urlsplit(url).hostname != "127.0.0.1":
        raise BenchError(f"refusing to load {url}: the benchmark only targets 127.0.0.1")


def argv(url: str, load: Load, token: str | None = None, script: str | None = None,
         script_args: tuple[str, ...] = ()) -> list[str]:
    """wrk's command line: latency distribution on, an Authorization header when a token is given.

    The token is an argument of wrk (visible in ps on this machine only, for the run's seconds): it is a
    short-lived token of the local emulator, not a real credential.
    """
    check_local(url)
    command = ["wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{load.seconds}s", "--latency"]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if script:
        command += ["-s", script]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    return command


def duration_ms(text: str) -> float:
    """A wrk duration such as ``812.00us``, ``1.52ms``, ``2.01s`` or ``1.00m`` in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if match is None:
        raise ValueError(f"cannot read wrk duration {text!r}")
    value, unit = match.groups()
    return float(value) * _UNITS_MS[unit]


def parse(output: str) -> dict:
    """Figures of a wrk ``--latency`` report: requests, seconds, req/s, p50/p75/p90/p99 (ms), errors.

    Raises ValueError when the report lacks the request count or the latency distribution (wrk failed, or
    ran without ``--latency``).
    """
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    if total is None:
        raise ValueError("no 'N requests in T' line in wrk's output")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    percentiles = {}
    # Anchored at the line start and one value per line: the "Req/Sec" line above also ends with "NN.NN%".
    for match in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE):
        percentiles[f"p{match.group(1)}_ms"] = duration_ms(match.group(2))
    if "p50_ms" not in percentiles or "p99_ms" not in percentiles:
        raise ValueError("no latency distribution in wrk's output (run it with --latency)")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": int(total.group(1)),
        "seconds": duration_ms(total.group(2)) / 1000.0,
        "rps": float(rate.group(1)) if rate else 0.0,
        **percentiles,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True))
        if socket
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0},
    }


def parse_orders_line(output: str) -> dict:
    """The ``orders sent N answered N accepted N`` line that bench/orders.lua prints when wrk ends."""
    match = re.search(r"^orders sent (\d+) answered (\d+) accepted (\d+)$", output, re.MULTILINE)
    if match is None:
        raise ValueError("no 'orders sent ...' line in wrk's output (bench/orders.lua not used?)")
    return dict(zip(("sent", "answered", "accepted"), map(int, match.groups()), strict=True))


def run(command: list[str], timeout: float) -> str:
    """Run wrk to its end and return its report; fail with wrk's own message when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout
