"""Credential rotation under load: inventory's, billing's and the broker's passwords rotate (the code path of
``make rotate-credentials``) while clients keep reading movies and placing orders through the gateway.

Open connections survive a password change, so a rotation alone would prove nothing: inside each rotation's
window (after setSecret, before finishSecret, when the server knows only AWSPENDING) the test makes the
services open new connections: a graceful gunicorn reload (SIGHUP: new workers, empty pools, the secret read
afresh) of inventory and billing, and every broker connection closed by the broker. With the re-read disabled
(``SecretCredentials.login_refused`` returning False) this test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
import requests
from e2e_support import new_marker, order, rows_for

from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

LOAD_THREADS = 4  # two read movies, two place orders
MAX_LOAD_SECONDS = 90  # a safety bound: the load stops when the rotations are done


class Load:
    """Bounded client load through the gateway; records every answer and every failed request."""

    def __init__(self, gateway: str, token: str, marker: str):
        self.gateway, self.token, self.marker = gateway, token, marker
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.errors: list[str] = []
        self.accepted: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True) for i in range(LOAD_THREADS)
        ]

    def _run(self, orders: bool) -> None:
        deadline = time.monotonic() + MAX_LOAD_SECONDS
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {self.token}"
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    if orders:
                        response = http.post(
                            f"{self.gateway}/api/billing", data=order(self.marker), timeout=10,
                            headers={"Content-Type": "application/json"},
                        )
                    else:
                        response = http.get(f"{self.gateway}/api/movies", timeout=10)
                except requests.RequestException as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.statuses.append(response.status_code)
                    if orders and response.status_code == 200:
                        self.accepted.append(response.json()["message_id"])
                time.sleep(0.01)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(15)


def _workers(master: int) -> set[int]:
    result = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True, check=False)
    return {int(pid) for pid in result.stdout.split()}


def _ready(system, name: str) -> bool:
    try:
        return requests.get(f"{system.profile.url(name)}/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _reload(system, name: str) -> None:
    """Graceful gunicorn reload: new workers (empty pools, the secret read afresh), old ones finish their work.
    Returns once only new workers run and the service is ready (its database reachable with the new login)."""
    master = system.service(name).pid()
    old = _workers(master)
    os.kill(master, signal.SIGHUP)
    wait_until(lambda: (workers := _workers(master)) and not workers & old, 30, f"{name}'s new workers")
    wait_until(lambda: _ready(system, name), 30, f"{name} to be ready with new connections")


def test_rotating_every_password_under_load_fails_no_request_and_loses_no_order(local_system, access_token, billing_db):
    """Zero 5xx (zero failed requests), and every accepted order is in billing_db exactly once."""
    marker = new_marker()
    gateway = local_system.profile.url("gateway")

    def new_connections(name: str):
        def after_step(step: str) -> None:
            if step != "setSecret":
                return
            if name == "rabbitmq":
                # Every AMQP connection closed by the broker: the gateway's publishers and billing's consumer
                # reconnect while only the pending password works.
                local_system.rabbitmq.ctl("close_all_connections", "credential rotation test")
                time.sleep(1)
                wait_until(lambda: _ready(local_system, "billing"), 30, "billing's consumer to reconnect")
            else:
                _reload(local_system, name)
            time.sleep(0.5)  # some load inside the window, on the new connections

        return after_step

    with Load(gateway, access_token, marker) as load:
        time.sleep(0.5)
        for name in ("inventory", "billing", "rabbitmq"):
            local_system.rotate_credentials(name, after_step=new_connections(name))
        time.sleep(1)

    assert load.errors == []
    assert [status for status in load.statuses if status != 200] == []
    assert len(load.accepted) > 20 and len(load.statuses) > 50
    deadline = time.monotonic() + 30
    while len(rows := rows_for(billing_db, marker)) < len(load.accepted) and time.monotonic() < deadline:
        time.sleep(0.2)
    stored = [row[3] for row in rows]
    assert sorted(stored) == sorted(load.accepted)  # each accepted order once, nothing else
