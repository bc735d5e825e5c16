"""Prometheus metrics every service has (HTTP requests) and the ``/metrics`` exposition.

Service-specific metrics live with their service (``billing.metrics``, ``gateway.metrics``). Under gunicorn
each worker is a separate process, so the counters live in prometheus_client's multiprocess files
(PROMETHEUS_MULTIPROC_DIR, set by ``common.gunicorn_config``) and ``/metrics`` sums them.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from common.config import env_str
from contract import environment as env

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by route template and status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# The transactional outbox (common.outbox_relay), by outbox table. Gauges "livemax": every worker's relay measures
# the same table, and a dead worker's value is dropped. Alarms watch the oldest pending age (events stuck).
OUTBOX_PENDING = Gauge(
    "outbox_pending_events", "Events committed to the outbox and not yet published (at the relay's last look).",
    ["outbox"], multiprocess_mode="livemax",
)
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_pending_age_seconds", "Age of the oldest event waiting in the outbox; 0 when it is empty.",
    ["outbox"], multiprocess_mode="livemax",
)
OUTBOX_PUBLISHED = Counter(
    "outbox_events_published_total", "Outbox events the broker confirmed (then deleted from the outbox).", ["outbox"]
)
OUTBOX_RELAY_FAILURES = Counter(
    "outbox_relay_failures_total", "Times the outbox relay lost the database or the broker and backed off.", ["outbox"]
)

# (method, route, status) -> the labelled children; ``labels()`` takes a lock and builds a key on every call.
_HTTP_CHILDREN: dict[tuple[str, str, int], tuple] = {}


def http_children(method: str, route: str, status: int) -> tuple:
    """The request counter and latency histogram for one method, route template and status (cached)."""
    key = (method, route, status)
    children = _HTTP_CHILDREN.get(key)
    if children is None:
        labels = (method, route, str(status))
        # Two threads may both build it; labels() returns the same children, so either result is right.
        children = _HTTP_CHILDREN[key] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
    return children


def render() -> tuple[bytes, str]:
    """Return the exposition body and content type for ``GET /metrics``."""
    if env_str(env.PROMETHEUS_MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
