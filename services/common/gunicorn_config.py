"""gunicorn settings shared by the three services (``gunicorn --config python:common.gunicorn_config``).

Everything comes from environment variables so one image fits a 0.25 vCPU Fargate task and a laptop. The
service is known from SERVICE_NAME: one whose ``contract.services`` entry says ``single_worker`` runs exactly
one worker, whatever GUNICORN_WORKERS asks for.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from common.config import env_int, env_str
from contract import environment as env
from contract.services import SERVICES_BY_NAME

proc_name = env_str(env.SERVICE_NAME)
_service = SERVICES_BY_NAME.get(proc_name)
_requested_workers = env_int(env.GUNICORN_WORKERS, minimum=1)
_single_worker = _service is not None and _service.single_worker

bind = f"{env_str(env.BIND_HOST)}:{env_int(env.PORT, minimum=1)}"
workers = 1 if _single_worker else _requested_workers
# gthread keeps client connections alive (sync workers close every one), which the gateway's pool relies on.
worker_class = "gthread"
threads = env_int(env.GUNICORN_THREADS, minimum=1)
# Longer than the ALB's 60 s idle timeout, so the load balancer, not gunicorn, closes idle connections.
keepalive = env_int(env.GUNICORN_KEEPALIVE, minimum=1)
timeout = env_int(env.GUNICORN_TIMEOUT, minimum=1)
# SIGTERM: stop accepting, finish in-flight requests (billing: the in-flight batch) within this many seconds.
graceful_timeout = env_int(env.GUNICORN_GRACEFUL_TIMEOUT, minimum=1)
# The service logs each request itself as JSON with its request id; gunicorn's access log would duplicate it.
accesslog = None
errorlog = "-"
loglevel = env_str(env.LOG_LEVEL).lower()
# Heartbeat files on tmpfs: works with a read-only root filesystem and avoids disk stalls.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# The application when the command line names none (the one image's CMD cannot expand its SERVICE build
# argument): the contract's factory of the service SERVICE_NAME names. An application on the command line wins.
wsgi_app = _service.wsgi_app if _service is not None else None
# gunicorn 23+ opens a runtime control socket under $HOME by default: shared by every gunicorn on a machine and
# a write to the root filesystem. Nothing here uses it, so it stays off.
control_socket_disable = True
# The services read their settings at import time in each worker; forwarded headers are not trusted.
forwarded_allow_ips = env_str(env.FORWARDED_ALLOW_IPS)


def on_starting(server):
    """Give the workers a fresh directory for multiprocess Prometheus metrics (stale files would add up)."""
    if workers != _requested_workers:
        server.log.warning(
            "%s runs exactly one worker (contract.services single_worker); ignoring GUNICORN_WORKERS=%d",
            proc_name,
            _requested_workers,
        )
    directory = env_str(env.PROMETHEUS_MULTIPROC_DIR) or os.path.join(
        tempfile.gettempdir(), f"prometheus-{os.getpid()}"
    )
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    os.environ[env.PROMETHEUS_MULTIPROC_DIR.name] = directory


def post_worker_init(worker):
    """Start the service's background work in the worker (billing: its consumer thread), after the app loaded."""
    from common.lifecycle import run_start_hooks

    run_start_hooks()


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the metrics files."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """Run the service's shutdown hooks (billing: stop consuming, finish the in-flight batch)."""
    from common.lifecycle import run_shutdown_hooks

    run_shutdown_hooks()
