"""Structured JSON logs with the request id of the work being done.

The request id lives in a context variable: Flask sets it per request, the billing consumer per message, and
every log record picks it up, so one id finds every line about one order across the three services. With
tracing on, a line written inside a span also carries its ``trace_id`` (``make trace ID=...``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import threading
import time
from typing import Any

from common import tracing

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# Who is calling (filled in by the gateway's authentication once it exists); logged like the request id.
principal_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("principal", default=None)

# Attributes every LogRecord has; anything else passed with ``extra=`` is emitted as a JSON field.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, logger, message, request id and any ``extra`` fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        # strftime is most of a record's cost; every record of the same second shares its text.
        self._second: tuple[int, str] = (-1, "")
        self._encode = json.JSONEncoder(default=str, ensure_ascii=False).encode

    def _timestamp(self, created: float) -> str:
        second = int(created)
        cached = self._second  # one read of one tuple: the second and its text always belong together
        if cached[0] == second:
            return cached[1]
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._second = (second, text)  # racing threads may overwrite each other; every pair stays consistent
        return text

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": f"{self._timestamp(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        trace_id = tracing.current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        principal = principal_var.get()
        if principal:
            entry["principal"] = principal
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encode(entry)


#: A line of at most this many bytes reaches a pipe in one piece, whatever other threads write (POSIX PIPE_BUF).
_ATOMIC_WRITE = 4096


class LineHandler(logging.Handler):
    """Writes each formatted record as one line with one ``write(2)`` on the stream's file descriptor.

    ``StreamHandler`` takes a handler-wide lock around formatting and writing, so under load the request
    threads queue on it (10% of a gateway worker's samples). Here formatting happens outside any lock and a
    line up to PIPE_BUF bytes is a single write the kernel never interleaves with another one; only longer
    lines (tracebacks) and short writes take the lock. Streams without a descriptor (test capture) are
    written through normally.
    """

    def __init__(self, stream=None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout
        try:
            self._fd: int | None = self.stream.fileno()
            self.stream.flush()
        except (AttributeError, OSError, ValueError):
            self._fd = None
        self._long_lines = threading.Lock()

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter, then emit without the handler lock (see the class docstring)."""
        rv = self.filter(record)
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` as one line."""
        try:
            line = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            if self._fd is None:
                with self._long_lines:
                    self.stream.write(line.decode("utf-8"))
                    self.stream.flush()
                return
            if len(line) <= _ATOMIC_WRITE:
                written = os.write(self._fd, line)
                if written == len(line):
                    return
                line = line[written:]
            with self._long_lines:
                view = memoryview(line)
                while view:
                    view = view[os.write(self._fd, view):]
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never break the request; report like logging does
            self.handleError(record)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON (CloudWatch and `make logs` read stdout)."""
    handler = LineHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs each failed or lost connection as ERROR lines with tracebacks; the gateway and billing log
    # one line of their own per failure (with what happens next), so pika's would only double the noise.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
