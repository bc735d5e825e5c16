"""common.tracing with the real OpenTelemetry SDK (spans kept in memory), and `make trace`'s tree printer."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import tracing
from contract.messaging import TRACEPARENT
from local_system.traces import find_traces, render_tree


@pytest.fixture
def spans():
    """Tracing on for the test, every finished span kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)


def test_traceparent_travels_in_amqp_headers(spans):
    """The publisher's span is the parent of the consumer span made from the message's headers."""
    headers: dict[str, object] = {"x-request-id": "r1"}
    with tracing.span("billing.orders publish", tracing.PRODUCER):
        tracing.inject(headers)
    # pika may hand header values back as bytes
    received = {key: value.encode() if isinstance(value, str) else value for key, value in headers.items()}
    consumer = tracing.start_consumer_span("billing.orders process", received, {})
    tracing.end([consumer])
    publish, process = spans.get_finished_spans()
    assert process.parent.span_id == publish.context.span_id
    assert process.context.trace_id == publish.context.trace_id
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]


def test_message_without_traceparent_starts_a_new_trace(spans):
    """No (or a malformed) traceparent: the consumer span is a root without links."""
    consumer = tracing.start_consumer_span("billing.orders process", {TRACEPARENT: b"garbage"}, {})
    tracing.end([consumer])
    (process,) = spans.get_finished_spans()
    assert process.parent is None
    assert list(process.links) == []


def test_children_records_one_block_under_each_parent(spans):
    """One timed block (the batch INSERT) becomes a child span of every recording parent, same timing."""
    parents = [tracing.start_consumer_span("process", None, {}) for _ in range(3)]
    with tracing.children(parents, "INSERT orders"):
        pass
    tracing.end(parents)
    inserts = [s for s in spans.get_finished_spans() if s.name == "INSERT orders"]
    assert sorted(s.parent.span_id for s in inserts) == sorted(p.get_span_context().span_id for p in parents)
    assert len({(s.start_time, s.end_time) for s in inserts}) == 1


def test_children_with_error_mark_the_span_failed(spans):
    """A dead-lettering is recorded as a child span with status ERROR and the reason."""
    parent = tracing.start_consumer_span("process", None, {})
    with tracing.children([parent], "billing.orders.dlq publish", tracing.PRODUCER, error="invalid_order"):
        pass
    tracing.end([parent])
    (dead_letter,) = [s for s in spans.get_finished_spans() if s.name.endswith("dlq publish")]
    assert dead_letter.status.is_ok is False
    assert dead_letter.status.description == "invalid_order"


def test_off_makes_no_spans_and_injects_nothing():
    """Tracing off (the default): helpers are no-ops, headers stay untouched, no trace id for logs."""
    tracing.use_provider(None)
    headers: dict[str, object] = {}
    with tracing.span("anything"):
        tracing.inject(headers)
        assert tracing.current_trace_id() is None
    assert headers == {}
    assert tracing.start_consumer_span("process", {TRACEPARENT: "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, {}) is None


def _span(span_id, parent, name, start, end, service="gateway", **extra):
    return {"trace_id": "a" * 32, "span_id": span_id, "parent_span_id": parent, "service": service, "name": name,
            "kind": extra.pop("kind", "INTERNAL"), "start_ns": start, "end_ns": end, "status": "UNSET",
            "status_message": "", "attributes": extra.pop("attributes", {}), "links": extra.pop("links", [])}


TREE = [
    _span("1", None, "POST /api/billing", 1_000_000, 9_000_000, kind="SERVER", attributes={"request.id": "r-1"}),
    _span("3", "2", "billing.orders process", 5_000_000, 8_000_000, service="billing",
          links=[{"trace_id": "a" * 32, "span_id": "2"}]),
    _span("2", "1", "billing.orders publish", 2_000_000, 4_000_000),
]


def test_tree_indents_children_under_parents_with_offsets():
    """The tree: a header, each span indented under its parent, offset from the first span and duration."""
    lines = render_tree(TREE, "a" * 32)
    assert lines[0] == f"trace {'a' * 32}  3 spans  billing, gateway  8.0 ms"
    assert lines[1].startswith("gateway POST /api/billing") and "+0.0 ms" in lines[1] and "8.0 ms" in lines[1]
    assert lines[2].startswith("  gateway billing.orders publish") and "+1.0 ms" in lines[2]
    assert lines[3].startswith("    billing billing.orders process") and "+4.0 ms" in lines[3]
    assert lines[3].endswith("links -> gateway billing.orders publish")


def test_trace_found_by_request_id_trace_id_or_last():
    """`make trace ID=` accepts the request id of a span, the trace id itself, or `last`."""
    assert find_traces(TREE, "r-1") == ["a" * 32]
    assert find_traces(TREE, "A" * 32) == ["a" * 32]
    assert find_traces(TREE, "last") == ["a" * 32]
    assert find_traces(TREE, "unknown") == []


def test_log_lines_get_the_trace_id_only_of_a_sampled_trace():
    """An unsampled request has no exported trace: its log lines carry no trace id that would lead nowhere."""
    from opentelemetry.sdk.trace import sampling

    tracing.use_provider(TracerProvider(sampler=sampling.ALWAYS_OFF))
    try:
        with tracing.span("unsampled"):
            assert tracing.current_trace_id() is None
    finally:
        tracing.use_provider(None)


def test_log_lines_get_the_trace_id_of_the_active_span(spans):
    """Inside a sampled span, the trace id for the log line is that span's, as 32 hex digits."""
    with tracing.span("sampled"):
        trace_id = tracing.current_trace_id()
    (span,) = spans.get_finished_spans()
    assert trace_id == format(span.context.trace_id, "032x")
