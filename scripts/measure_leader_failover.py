#!/usr/bin/env python3
"""Measure billing's leader failover when the leader VANISHES (no FIN, no RST): as root, against the test
profile's PostgreSQL (``python -m local_system --profile test`` starts it; this script starts it too).

Two :class:`billing.leader.LeaderElection` instances campaign for a lock of their own; once the first leads,
iptables drops every packet of its session on the loopback interface (both directions), the way a dead host
or a cut network would. Prints when the old leader stepped down and when the other one led, next to
``failover_budget``. The rules are removed however the script ends. ``kill -9`` needs no such script: the
kernel closes the socket and PostgreSQL frees the lock at once (tests/e2e/test_billing_leader_failover.py).

    sudo .venv/bin/python scripts/measure_leader_failover.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "services"), str(REPO_ROOT)]

from billing.leader import LeaderElection, failover_budget  # noqa: E402
from common.config import DatabaseSettings  # noqa: E402
from local_system import LocalSystem  # noqa: E402

CHECK = 2.0


def main() -> int:
    """Partition a leader's session and time the handover; exit 1 when no follower led within 30 s."""
    system = LocalSystem("test")
    system.start_infrastructure()
    for key, value in system.service_env("billing").items():
        if key.startswith(("DATABASE_", "AWS_")):
            os.environ[key] = value
    lock = (0x6D656173, uuid.uuid4().int % 2**31)  # "meas", random: never billing's own lock
    database = DatabaseSettings.from_env("billing_db")
    old, new = (LeaderElection(database, f"measure-{n}", CHECK, lock=lock) for n in ("old", "new"))
    assert old.run_once(), "the first election must lead"
    with old._connection.cursor() as cur:
        cur.execute("SELECT inet_client_port()")
        port = cur.fetchone()[0]
    rules = [["INPUT", "-i", "lo", "-p", "tcp", flag, str(port), "-j", "DROP"] for flag in ("--sport", "--dport")]
    for rule in rules:
        subprocess.run(["iptables", "-A", *rule], check=True)
    began = time.monotonic()
    stepped_down = led = None
    try:
        old.start()
        new.start()
        while time.monotonic() - began < 30 and led is None:
            if stepped_down is None and not old.is_leader:
                stepped_down = time.monotonic() - began
            if new.is_leader:
                led = time.monotonic() - began
            time.sleep(0.05)
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D", *rule], check=True)
        new.stop()
        old.stop(timeout=1)
    step_down, earliest_release, take_over = failover_budget(CHECK)
    print(f"old leader stepped down after {stepped_down} s (budget {step_down}); "
          f"new leader after {led} s (lock free at the earliest {earliest_release}, budget {take_over})")
    return 0 if led is not None else 1


if __name__ == "__main__":
    sys.exit(main())
