"""Starting an extra gateway process (gunicorn, the real app) for a test: auth against the test's keys, its own
port, its own settings. Used by the authentication and rate-limit tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from local_system.processes import port_open

REPO = Path(__file__).resolve().parents[2]


def start_gateway(system, port: int, name: str, **settings: str) -> subprocess.Popen:
    """Start a gateway on ``port`` with the test system's gateway environment plus ``settings``; return once
    ``/health`` answers 200. Its log is ``<state dir>/<name>.log``, its metrics ``metrics/<name>``."""
    env = system.service_env("gateway")
    env.update(
        PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(system.state_dir / "metrics" / name),
        INVENTORY_URL=system.profile.url("inventory"),
    )
    env.update(settings)
    if port_open(port):
        pytest.fail(f"port {port} is taken (a gateway left over from an interrupted run?)")
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    log_path = system.state_dir / f"{name}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:common.gunicorn_config", "gateway:create_app()"],
            cwd=REPO / "services", env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return process
            except requests.RequestException:  # not listening yet, or a slow first answer on a busy machine
                time.sleep(0.2)
        pytest.fail(f"gateway {name} did not start; see {log_path}")
    except BaseException:
        process.kill()  # never leave a gateway behind on the fixed port
        process.wait(10)
        raise


def stop_gateways(*processes: subprocess.Popen) -> None:
    """Terminate gracefully and wait."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(15)
