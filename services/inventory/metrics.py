"""Prometheus metrics of inventory's poster results consumer and saga handler (on ``/metrics`` with the HTTP ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RESULTS_APPLIED = Counter(
    "posters_results_applied_total",
    "Poster results that changed a movie, by type (poster.published, poster.rejected).",
    ["type"],
)
RESULTS_IGNORED = Counter(
    "posters_results_ignored_total",
    "Poster results that changed nothing: older than the movie's newest upload, a replay, or a deleted movie.",
    ["reason"],
)
RESULTS_FAILED = Counter(
    "posters_results_failed_total",
    "Poster results left on the queue (malformed: SQS moves them to the dead-letter queue), by reason.",
    ["reason"],
)
RECEIVE_ERRORS = Counter(
    "posters_results_receive_errors_total", "Failed receives from the results queue (SQS or the database away)."
)
# One value per worker; "livemax": a dead worker's value is dropped (common.gunicorn_config's child_exit).
CONSUMER_UP = Gauge(
    "posters_results_consumer_up",
    "1 while this worker's poster results consumer reaches its queue, else 0.",
    multiprocess_mode="livemax",
)

# The purchase saga (inventory.reservations). Counted when the handler decides, inside the event's
# transaction: an event whose commit then fails is counted again when it is redelivered (rare).
RESERVATIONS = Counter(
    "inventory_reservations_total",
    "Saga decisions on reservations, by outcome: reserved, rejected (with stock.rejected), released (the "
    "compensation gave the stock back) and tombstone (a cancel before its placement).",
    ["outcome"],
)
