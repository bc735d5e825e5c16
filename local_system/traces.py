"""`make trace ID=...`: one request's spans from the services' trace files, as an indented tree with timings.

The services of the local system write one JSON line per span to ``.run/<profile>/traces/<service>.jsonl``
(``services/common/trace_export.py`` writes the format read here). ``ID`` is a trace id (32 hex digits), a
request id (the ``request.id`` attribute of the gateway's and billing's spans, the ``request_id`` of a log
line), or ``last`` (the newest trace that started at the gateway).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def read_spans(folder: Path) -> list[dict]:
    """Every span in the folder's ``*.jsonl`` files (a torn last line, still being written, is skipped)."""
    spans = []
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    span = json.loads(line)
                except ValueError:
                    continue
                if isinstance(span, dict) and "trace_id" in span and "span_id" in span:
                    spans.append(span)
    return spans


def find_traces(spans: Iterable[dict], wanted: str) -> list[str]:
    """The trace ids ``wanted`` names (a trace id, a request id or ``last``), oldest first."""
    spans = list(spans)
    wanted = wanted.strip()
    if wanted == "last":
        roots = [s for s in spans if s.get("parent_span_id") is None and s.get("kind") == "SERVER"]
        return [max(roots, key=lambda s: s["start_ns"])["trace_id"]] if roots else []
    if _TRACE_ID.match(wanted.lower()) and any(s["trace_id"] == wanted.lower() for s in spans):
        return [wanted.lower()]
    first_seen: dict[str, int] = {}
    for span in spans:
        if (span.get("attributes") or {}).get("request.id") == wanted:
            trace_id = span["trace_id"]
            first_seen[trace_id] = min(first_seen.get(trace_id, span["start_ns"]), span["start_ns"])
    return sorted(first_seen, key=first_seen.__getitem__)


def _label(span: dict) -> str:
    return f"{span.get('service', '?')} {span.get('name', '?')}"


def render_tree(spans: Iterable[dict], trace_id: str) -> list[str]:
    """The lines of one trace: a header, then each span under its parent, in start order.

    A span line: indentation (two spaces a level), service, span name, ``+offset ms`` from the trace's
    first span, duration in ms, status, and ``links -> <service> <name>`` for each link. A span whose
    parent is not in the files (not exported yet, or another process's) is shown at the top level.
    """
    spans = list(spans)
    members = sorted((s for s in spans if s["trace_id"] == trace_id), key=lambda s: (s["start_ns"], s["span_id"]))
    if not members:
        return [f"trace {trace_id}: no spans"]
    by_id = {s["span_id"]: s for s in members}
    everywhere = {s["span_id"]: s for s in spans}  # a link may point into another trace
    children: dict[str | None, list[dict]] = {}
    for span in members:
        parent = span.get("parent_span_id")
        children.setdefault(parent if parent in by_id else None, []).append(span)
    start = members[0]["start_ns"]
    end = max(s["end_ns"] for s in members)
    services = sorted({s.get("service", "?") for s in members})
    lines = [
        f"trace {trace_id}  {len(members)} spans  {', '.join(services)}  {(end - start) / 1e6:.1f} ms",
    ]

    def walk(span: dict, depth: int) -> Iterator[str]:
        offset = (span["start_ns"] - start) / 1e6
        duration = (span["end_ns"] - span["start_ns"]) / 1e6
        status = span.get("status", "UNSET")
        if span.get("status_message"):
            status = f"{status} ({span['status_message']})"
        indent = "  " * depth
        start_text = f"+{offset:.1f}"
        text = f"{indent}{_label(span):<{max(1, 56 - len(indent))}} {start_text:>8} ms {duration:7.1f} ms  {status}"
        for link in span.get("links") or []:
            target = everywhere.get(link["span_id"])
            text += f"  links -> {_label(target) if target else link['span_id']}"
        yield text
        for child in children.get(span["span_id"], []):
            yield from walk(child, depth + 1)

    for root in children.get(None, []):
        lines.extend(walk(root, 0))
    return lines


def trace_report(folder: Path, wanted: str) -> list[str]:
    """The lines `make trace ID=wanted` prints (empty when no trace matches)."""
    spans = read_spans(folder)
    lines: list[str] = []
    for trace_id in find_traces(spans, wanted):
        if lines:
            lines.append("")
        lines.extend(render_tree(spans, trace_id))
    return lines
