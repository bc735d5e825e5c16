"""gunicorn settings shared by the three services (``gunicorn --config python:common.gunicorn_config``).

Everything comes from environment variables so one image fits a 0.25 vCPU Fargate task and a laptop.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from common.config import env_int, env_str
from contract.services import SERVICE_NAMES, service

bind = f"{env_str('BIND_HOST', '0.0.0.0')}:{env_int('PORT', 8080, minimum=1)}"  # noqa: S104 - containers listen on all
workers = env_int("GUNICORN_WORKERS", 2, minimum=1)
# gthread keeps client connections alive (sync workers close every one), which the gateway's pool relies on.
worker_class = "gthread"
threads = env_int("GUNICORN_THREADS", 8, minimum=1)
# Longer than the ALB's 60 s idle timeout, so the load balancer, not gunicorn, closes idle connections.
keepalive = env_int("GUNICORN_KEEPALIVE", 75, minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
# SIGTERM: stop accepting, finish in-flight requests (billing: the in-flight batch) within this many seconds.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 25, minimum=1)
# The service logs each request itself as JSON with its request id; gunicorn's access log would duplicate it.
accesslog = None
errorlog = "-"
loglevel = env_str("LOG_LEVEL", "INFO").lower()
# Heartbeat files on tmpfs: works with a read-only root filesystem and avoids disk stalls.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
proc_name = env_str("SERVICE_NAME", "service")
# The application when the command line names none (the one image's CMD cannot expand its SERVICE build
# argument): the contract's factory of the service SERVICE_NAME names. An application on the command line wins.
wsgi_app = service(proc_name).wsgi_app if proc_name in SERVICE_NAMES else None
# gunicorn 23+ opens a runtime control socket under $HOME by default: shared by every gunicorn on a machine and
# a write to the root filesystem. Nothing here uses it, so it stays off.
control_socket_disable = True
# The services read their settings at import time in each worker; forwarded headers are not trusted.
forwarded_allow_ips = env_str("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    """Give the workers a fresh directory for multiprocess Prometheus metrics (stale files would add up)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"prometheus-{os.getpid()}"
    )
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the metrics files."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """Run the service's shutdown hooks (billing: stop consuming, finish the in-flight batch)."""
    from common.lifecycle import run_shutdown_hooks

    run_shutdown_hooks()
