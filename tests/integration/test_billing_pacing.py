"""BILLING_MAX_ROWS_PER_SECOND against the real test PostgreSQL and RabbitMQ: a backlog drains at the budget,
and nothing is lost on the way. Judged by what was recorded (the rows' commit times, the throttle metric),
never by how fast the machine is."""

from __future__ import annotations

from prometheus_client import REGISTRY

# The consumer tests' fixtures (a queue of the test's own, a consumer on it), used here by name.
from tests.integration.test_billing_consumer import (  # noqa: F401
    VALID,
    billing_env,
    queue,
    start_consumer,
    wait_until,
)

TOTAL, BUDGET, BATCH = 120, 40.0, 20


def _throttled_seconds() -> float:
    return REGISTRY.get_sample_value("billing_throttled_seconds_total") or 0.0


def test_a_backlog_drains_at_the_budget_and_nothing_is_lost(queue, start_consumer, postgres):  # noqa: F811
    """120 queued orders at 40 rows/s in batches of 20: every order is stored exactly once, nothing is
    dead-lettered, the batches were held back (120 - 20) / 40 = 2.5 s in all, and the first and last batch
    were committed at least that far apart."""
    ids = queue.publish([VALID] * TOTAL, confirm=False)
    before = _throttled_seconds()
    start_consumer(max_rows_per_second=BUDGET, batch_size=BATCH, prefetch=2 * BATCH)
    wait_until(lambda: queue.row_count() == TOTAL, 60, f"{TOTAL} rows")

    assert queue.ready() == 0 and queue.dead_letter_count() == 0
    stored = postgres.query(
        "billing_db", "SELECT message_id FROM orders WHERE message_id LIKE %s", (f"{queue.name}-%",)
    )
    assert sorted(row[0] for row in stored) == sorted(ids)
    paced = (TOTAL - BATCH) / BUDGET
    assert _throttled_seconds() - before >= paced - 0.05
    [(spread,)] = postgres.query(
        "billing_db",
        "SELECT extract(epoch FROM max(created_at) - min(created_at)) FROM orders WHERE message_id LIKE %s",
        (f"{queue.name}-%",),
    )
    assert float(spread) >= paced - 0.05
