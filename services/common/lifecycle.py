"""Start and shutdown hooks of a gunicorn worker.

Application factories only build objects; work that runs in the background (billing's consumer thread) is
registered with :func:`on_start` and started by gunicorn's ``post_worker_init`` hook, once the worker process
exists (``common.gunicorn_config``). :func:`on_shutdown` hooks run when the worker exits (after SIGTERM and
the in-flight requests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_start_hooks: list[Callable[[], None]] = []
_shutdown_hooks: list[Callable[[], None]] = []
_lock = threading.Lock()
log = logging.getLogger(__name__)


def on_start(hook: Callable[[], None]) -> None:
    """Register ``hook`` to run once when this worker process starts serving."""
    with _lock:
        _start_hooks.append(hook)


def on_shutdown(hook: Callable[[], None]) -> None:
    """Register ``hook`` to run once when this worker process shuts down."""
    with _lock:
        _shutdown_hooks.append(hook)


def run_start_hooks() -> None:
    """Run the registered start hooks, oldest first. A failing hook raises: a worker that cannot do its work
    must not look healthy (gunicorn then stops it and starts another)."""
    with _lock:
        hooks = list(_start_hooks)
        _start_hooks.clear()
    for hook in hooks:
        hook()


def run_shutdown_hooks() -> None:
    """Run the registered shutdown hooks, newest first; one failing hook does not stop the others."""
    with _lock:
        hooks = list(reversed(_shutdown_hooks))
        _shutdown_hooks.clear()
    for hook in hooks:
        try:
            hook()
        except Exception:
            log.exception("shutdown hook failed", extra={"hook": getattr(hook, "__qualname__", repr(hook))})
