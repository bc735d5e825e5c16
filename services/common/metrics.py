"""Prometheus metrics shared by the services.

Under gunicorn each worker is a separate process, so the counters live in prometheus_client's multiprocess
files (PROMETHEUS_MULTIPROC_DIR, set by ``common.gunicorn_config``) and ``/metrics`` sums them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by route template and status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MESSAGES_PUBLISHED = Counter(
    "billing_messages_published_total", "Orders published to the billing queue, by outcome.", ["outcome"]
)
MESSAGES_CONSUMED = Counter(
    "billing_messages_consumed_total",
    "Orders taken off the billing queue, by outcome (stored, duplicate, dead_lettered).",
    ["outcome"],
)
MESSAGES_DEAD_LETTERED = Counter(
    "billing_messages_dead_lettered_total", "Messages moved to the dead-letter queue, by reason.", ["reason"]
)
BATCH_SIZE = Histogram(
    "billing_batch_size",
    "Messages handled per billing batch (one INSERT and one acknowledgement each).",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
BATCH_DURATION = Histogram(
    "billing_batch_duration_seconds",
    "Time to validate, store, dead-letter and acknowledge one billing batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Requests the gateway could not forward, by upstream and kind.",
    ["upstream", "kind"],
)


def render() -> tuple[bytes, str]:
    """Return the exposition body and content type for ``GET /metrics``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
