"""Shutdown hooks run when a gunicorn worker exits (after SIGTERM and the in-flight requests)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_hooks: list[Callable[[], None]] = []
_lock = threading.Lock()
log = logging.getLogger(__name__)


def on_shutdown(hook: Callable[[], None]) -> None:
    """Register ``hook`` to run once when this worker process shuts down."""
    with _lock:
        _hooks.append(hook)


def run_shutdown_hooks() -> None:
    """Run the registered hooks, newest first; one failing hook does not stop the others."""
    with _lock:
        hooks = list(reversed(_hooks))
        _hooks.clear()
    for hook in hooks:
        try:
            hook()
        except Exception:
            log.exception("shutdown hook failed", extra={"hook": getattr(hook, "__qualname__", repr(hook))})
