"""Prometheus metrics of the gateway (exposed on its ``/metrics`` next to the HTTP ones)."""

from __future__ import annotations

from prometheus_client import Counter

# The name says billing because the messages are billing's orders; the gateway is the one that publishes them.
MESSAGES_PUBLISHED = Counter(
    "billing_messages_published_total", "Orders published to the billing queue, by outcome.", ["outcome"]
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Requests the gateway could not forward, by upstream and kind.",
    ["upstream", "kind"],
)
RATE_LIMIT_DECISIONS = Counter(
    "gateway_rate_limit_decisions_total",
    "Throttled requests by budget (read, write) and outcome: allowed, throttled (429), store_unavailable (passed).",
    ["budget", "outcome"],
)
RATE_LIMIT_STORE_ERRORS = Counter(
    "gateway_rate_limit_store_errors_total",
    "Failed calls to the rate-limit store (each opens the fail-open circuit), by kind.",
    ["kind"],
)
