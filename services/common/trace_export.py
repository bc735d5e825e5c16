"""The local system's span exporter: one JSON line per span, appended to ``<TRACES_DIR>/<service>.jsonl``.

A file and no collector keeps the local system free of another process; ``python -m local_system trace``
reads these files (the line format below is its input: keep both in step).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def span_record(span: ReadableSpan, service: str) -> dict[str, object]:
    """One span as the JSON object of its line: ids in hex, times in Unix nanoseconds."""
    context = span.context
    parent = span.parent
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "service": service,
        "name": span.name,
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_message": span.status.description or "",
        "attributes": dict(span.attributes or {}),
        "links": [
            {"trace_id": format(link.context.trace_id, "032x"), "span_id": format(link.context.span_id, "016x")}
            for link in span.links
        ],
    }


class JsonLinesExporter(SpanExporter):
    """Appends each batch with one ``write(2)`` on an O_APPEND descriptor, so the workers of one service can
    share the file without interleaving their lines."""

    def __init__(self, folder: str, service: str):
        os.makedirs(folder, exist_ok=True)
        self.service = service
        self.path = os.path.join(folder, f"{service}.jsonl")
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans``, one line each."""
        if self._fd is None:
            return SpanExportResult.FAILURE
        data = "".join(json.dumps(span_record(s, self.service), default=str) + "\n" for s in spans).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here: every export is written at once."""
        return True
