"""Structured JSON logs with the request id of the work being done.

The request id lives in a context variable: Flask sets it per request, the billing consumer per message, and
every log record picks it up, so one id finds every line about one order across the three services.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

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

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        principal = principal_var.get()
        if principal:
            entry["principal"] = principal
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON (CloudWatch and `make logs` read stdout)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs each failed or lost connection as ERROR lines with tracebacks; the gateway and billing log
    # one line of their own per failure (with what happens next), so pika's would only double the noise.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
