"""The ``/health`` endpoint of a local runner (the poster pipeline's, the invoicer's): what Lambda's console
would show about a function, for ``make status`` and the tests. Standard library only."""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: How long a start waits for its port to be free (see health_server).
BIND_RETRY_SECONDS = 15.0
#: ``(alive, details)``: whether every loop of the runner still runs, and what to show about them.
Report = Callable[[], tuple[bool, dict[str, Any]]]


def health_server(port: int, report: Report) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` answering ``GET /health``: 200 ``{"status": "ok", "uptime_seconds", ...}``
    while ``report`` says alive, else 503 ``"degraded"``; 404 for any other path. Serve it on a thread."""
    started = time.time()

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/health":
                self.send_error(404)
                return
            alive, details = report()
            body = json.dumps({
                "status": "ok" if alive else "degraded", "uptime_seconds": round(time.time() - started), **details,
            }).encode()
            self.send_response(200 if alive else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # status polls would fill the log

    # The profiles' ports lie in Linux's ephemeral range (32768-60999): an outgoing connection of another
    # process may hold this one as its local port for a moment. Retry briefly rather than fail the start.
    deadline = time.monotonic() + BIND_RETRY_SECONDS
    while True:
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), Health)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
