"""Traces end to end: one order is one trace from the gateway's request through RabbitMQ to billing's INSERT.

The test system runs with tracing on (every request sampled, spans in .run/test/traces/<service>.jsonl);
these tests read those files, the services' log files and `python -m local_system trace`'s output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import pytest
from e2e_support import new_marker, order, wait_for_rows

from contract.messaging import BILLING_QUEUE, TRACEPARENT
from local_system.services import traces_dir
from local_system.traces import find_traces, read_spans

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def _spans_of(local_system, wanted: str, names: set[str], timeout: float = 20.0) -> list[dict]:
    """The spans of the one trace ``wanted`` names, once every span named in ``names`` has been exported."""
    folder = traces_dir(local_system.profile)
    deadline = time.monotonic() + timeout
    while True:
        spans = read_spans(folder)
        traces = find_traces(spans, wanted)
        members = [s for s in spans if traces and s["trace_id"] == traces[-1]]
        if {s["name"] for s in members} >= names or time.monotonic() > deadline:
            assert len(traces) == 1, f"expected one trace for {wanted}, found {traces}"
            return members
        time.sleep(0.25)


def _one(spans: list[dict], service: str, name: str) -> dict:
    found = [s for s in spans if s["service"] == service and s["name"] == name]
    assert len(found) == 1, f"expected one {service} span {name!r}, got {[(s['service'], s['name']) for s in spans]}"
    return found[0]


ORDER_SPANS = {"POST /api/billing", "billing.orders publish", "billing.orders process", "INSERT orders"}


@pytest.fixture
def traced_order(gateway, http, billing_db, local_system) -> tuple[str, list[dict]]:
    """One order posted with a known request id, stored; its request id and the spans of its trace."""
    marker = new_marker()
    request_id = f"trace-{uuid.uuid4().hex}"
    response = http.post(
        f"{gateway}/api/billing",
        data=order(marker, 2, "20"),
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
    )
    assert response.status_code == 200
    wait_for_rows(billing_db, marker, 1)
    return request_id, _spans_of(local_system, request_id, ORDER_SPANS)


def test_an_order_is_one_trace_from_gateway_to_insert(traced_order):
    """The order's trace holds the gateway request, the publish, billing's consume and the INSERT."""
    _, spans = traced_order
    assert len({s["trace_id"] for s in spans}) == 1
    kinds = {(s["service"], s["name"]): s["kind"] for s in spans}
    assert kinds[("gateway", "POST /api/billing")] == "SERVER"
    assert kinds[("gateway", "billing.orders publish")] == "PRODUCER"
    assert kinds[("billing", "billing.orders process")] == "CONSUMER"
    assert kinds[("billing", "INSERT orders")] == "CLIENT"


def test_consumer_span_is_child_of_and_linked_to_the_producer_span(traced_order):
    """publish is under the request, process under (and linked to) publish, INSERT under process."""
    _, spans = traced_order
    request = _one(spans, "gateway", "POST /api/billing")
    publish = _one(spans, "gateway", "billing.orders publish")
    process = _one(spans, "billing", "billing.orders process")
    insert = _one(spans, "billing", "INSERT orders")
    assert request["parent_span_id"] is None
    assert publish["parent_span_id"] == request["span_id"]
    assert process["parent_span_id"] == publish["span_id"]
    assert {"trace_id": publish["trace_id"], "span_id": publish["span_id"]} in process["links"]
    assert insert["parent_span_id"] == process["span_id"]


def _log_lines(path: os.PathLike, request_id: str) -> list[dict]:
    lines = []
    with open(path, encoding="utf-8") as log:
        for line in log:
            if request_id in line:
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
    return lines


def test_log_lines_of_gateway_and_billing_carry_the_trace_id(traced_order, local_system):
    """Every JSON log line of the order (gateway and billing) has its trace id next to its request id."""
    request_id, spans = traced_order
    trace_id = spans[0]["trace_id"]
    files = local_system.log_files()
    for service in ("gateway", "billing"):
        lines = [entry for entry in _log_lines(files[service], request_id) if entry.get("request_id") == request_id]
        assert lines, f"no {service} log line with request id {request_id}"
        assert {entry.get("trace_id") for entry in lines} == {trace_id}, service


def test_make_trace_prints_the_order_as_a_tree(traced_order, local_system):
    """`python -m local_system trace <request id>` prints the trace: header, then each span under its parent."""
    request_id, spans = traced_order
    result = subprocess.run(
        [sys.executable, "-m", "local_system", "--profile", local_system.profile.name, "trace", request_id],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"trace {spans[0]['trace_id']}")
    assert "billing, gateway" in lines[0]
    body = lines[1:]
    assert body[0].startswith("gateway POST /api/billing")
    assert body[1].startswith("  gateway billing.orders publish")
    assert body[2].startswith("    billing billing.orders process")
    assert "links -> gateway billing.orders publish" in body[2]
    assert body[3].startswith("      billing INSERT orders")
    assert all(" ms " in line for line in body)


def test_a_read_is_traced_through_inventory_to_its_query(gateway, http, local_system):
    """GET /api/movies: gateway request -> proxy call -> inventory request -> SELECT, one trace."""
    request_id = f"trace-{uuid.uuid4().hex}"
    response = http.get(f"{gateway}/api/movies", headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    spans = _spans_of(local_system, request_id, {"GET /api/movies", "GET inventory", "SELECT movies"})
    request = _one(spans, "gateway", "GET /api/movies")
    client = _one(spans, "gateway", "GET inventory")
    served = [s for s in spans if s["service"] == "inventory" and s["kind"] == "SERVER"]
    select = _one(spans, "inventory", "SELECT movies")
    assert client["parent_span_id"] == request["span_id"]
    assert len(served) == 1 and served[0]["parent_span_id"] == client["span_id"]
    assert select["parent_span_id"] == served[0]["span_id"]


def test_dead_lettering_a_poison_message_is_an_error_span(amqp, local_system):
    """A message billing can never store: its process span and its dead-letter publish span are ERROR."""
    trace_id = uuid.uuid4().hex
    producer_span = uuid.uuid4().hex[:16]
    poison = json.dumps({"user_id": new_marker(), "number_of_items": "-3", "total_amount": "1"}).encode()
    amqp.basic_publish(
        "",
        BILLING_QUEUE.name,
        poison,
        pika.BasicProperties(
            message_id=uuid.uuid4().hex,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={TRACEPARENT: f"00-{trace_id}-{producer_span}-01"},
        ),
    )
    spans = _spans_of(local_system, trace_id, {"billing.orders process", "billing.orders.dlq publish"})
    process = _one(spans, "billing", "billing.orders process")
    dead_letter = _one(spans, "billing", "billing.orders.dlq publish")
    assert process["parent_span_id"] == producer_span
    assert process["status"] == "ERROR" and "number_of_items" in process["status_message"]
    assert dead_letter["status"] == "ERROR"
    assert dead_letter["parent_span_id"] == process["span_id"]
