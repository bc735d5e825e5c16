"""Prometheus metrics of the billing consumer (exposed on billing's ``/metrics`` next to the HTTP ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "billing_messages_consumed_total",
    "Orders taken off the billing queue, by outcome (stored, duplicate, dead_lettered, parked: their shard was away).",
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
ORDER_AGE = Histogram(
    "billing_order_age_seconds",
    "Age of the oldest order of each batch when billing received it (since the gateway published it), by priority.",
    ["priority"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
THROTTLED_SECONDS = Counter(
    "billing_throttled_seconds_total",
    "Time the consumer held batches back to stay within BILLING_MAX_ROWS_PER_SECOND.",
)
PACED_BATCHES = Counter(
    "billing_paced_batches_total", "Batches that waited for the write budget (BILLING_MAX_ROWS_PER_SECOND)."
)
# Gauges of one process; "livemax": a dead worker's value is dropped (common.gunicorn_config's child_exit).
LEADER = Gauge(
    "billing_leader", "1 while this billing task is the leader that runs the periodic jobs, else 0.",
    multiprocess_mode="livemax",
)
ORDERS_LAST_MINUTE = Gauge(
    "billing_orders_last_minute", "Orders stored in the newest closed minute the aggregates job wrote (leader only).",
    multiprocess_mode="livemax",
)
REVENUE_LAST_MINUTE = Gauge(
    "billing_revenue_last_minute", "Revenue of the newest closed minute the aggregates job wrote (leader only).",
    multiprocess_mode="livemax",
)
JOB_RUNS = Counter(
    "billing_job_runs_total", "Runs of the leader's periodic jobs, by job and outcome (ok, failed).", ["job", "outcome"]
)
DEAD_LETTERS_REDRIVEN = Counter(
    "billing_dead_letters_redriven_total", "Transient dead letters the re-drive job moved back to their queue."
)
AGGREGATE_REPEATS = Counter(
    "billing_order_minute_repeats_total", "Minutes the aggregates job found already written (two leaders at once?)."
)
