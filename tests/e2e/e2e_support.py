"""Helpers for the end-to-end order tests (a plain module, so imports never depend on conftest loading order)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

from local_system.processes import port_released, process_tree


def rows_for(conn, marker: str) -> list[tuple]:
    """Orders whose user_id is ``marker`` (each test uses its own marker so tests do not see each other)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, number_of_items, total_amount, message_id, request_id FROM orders WHERE user_id = %s",
            (marker,),
        )
        return cur.fetchall()


def wait_for_rows(conn, marker: str, count: int, timeout: float = 20.0) -> list[tuple]:
    """Poll until ``count`` rows for ``marker`` exist (or the timeout passes); return what is there."""
    deadline = time.monotonic() + timeout
    rows = rows_for(conn, marker)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = rows_for(conn, marker)
    return rows


def new_marker() -> str:
    """A user id unique to one test."""
    return f"e2e-{uuid.uuid4().hex[:12]}"


def order(marker: str, items: int = 1, amount: str = "10") -> str:
    """An order body for ``marker``."""
    return json.dumps({"user_id": marker, "number_of_items": str(items), "total_amount": amount})


def kill_9(service) -> None:
    """Crash a local service (a ``ServiceProcess``): SIGKILL to its whole process group in one signal, then wait
    until every process is gone and its port is free.

    One signal for the group, not one per pid: a master that outlived its workers by a moment forked a new worker,
    which was orphaned and kept the port while it booted, so the service could not be started again."""
    pid = service.pid()
    assert pid is not None, f"{service.label} is not running"
    os.killpg(pid, signal.SIGKILL)  # the master leads its own session and group (local_system.processes.spawn)
    deadline = time.monotonic() + 10
    while process_tree(pid) and service.pid() is not None:
        assert time.monotonic() < deadline, f"{service.label} still runs after SIGKILL"
        time.sleep(0.05)
    assert port_released(service.port, timeout=10), f"port {service.port} of {service.label} still taken"
