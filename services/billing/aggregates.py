"""The aggregates job: orders and revenue per closed minute, from ``orders`` into ``order_minutes``.

Run by the leader only (``billing.jobs``). Each run writes the minutes after the newest one already written
that are closed (ended more than :data:`GRACE` ago, so an INSERT that began inside the minute has committed),
in one statement. A minute is written once: the primary key refuses a second row, and an attempt to write a
minute again (two leaders at once) is counted in ``repeats`` and logged as an error instead of hidden.

Each new minute is logged as one JSON line (``"order minute aggregated"``, with ``orders`` and ``revenue``):
on AWS, metric filters on billing's log group turn them into CloudWatch metrics for the dashboard
(``stacks/monitoring.py``); the newest minute is also on ``/metrics`` (``billing_orders_last_minute``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from billing.metrics import AGGREGATE_REPEATS, ORDERS_LAST_MINUTE, REVENUE_LAST_MINUTE
from billing.store import OrderStore

log = logging.getLogger(__name__)

#: A minute is closed this long after it ended: orders are stamped with their INSERT's start time.
GRACE = timedelta(seconds=10)
#: The log line the CloudWatch metric filters match (stacks/monitoring.py).
LOG_MESSAGE = "order minute aggregated"

# Minutes after the newest written one (all minutes when none is), up to the last closed one. ON CONFLICT can
# only happen when another run wrote the same minute meanwhile: it is counted, never overwritten.
_AGGREGATE = """
    WITH newest AS (SELECT max(minute) AS minute FROM order_minutes)
    INSERT INTO order_minutes AS m (minute, orders, revenue)
    SELECT date_trunc('minute', o.created_at), count(*), sum(o.total_amount)
      FROM orders o, newest
     WHERE o.created_at < date_trunc('minute', now() - %(grace)s)
       AND (newest.minute IS NULL OR o.created_at >= newest.minute + interval '1 minute')
     GROUP BY 1
    ON CONFLICT (minute) DO UPDATE SET repeats = m.repeats + 1
    RETURNING minute, orders, revenue, repeats
"""


@dataclass(frozen=True)
class Minute:
    """One closed minute: its start, how many orders were stored in it and their total amount."""

    minute: datetime
    orders: int
    revenue: Decimal


def aggregate_minutes(store: OrderStore) -> list[Minute]:
    """Write every closed minute not yet written; return the new ones, oldest first."""
    store.check()  # the schema (order_minutes) is in place
    with store.pool.connection() as conn, conn.cursor() as cur:
        cur.execute(_AGGREGATE, {"grace": GRACE})
        rows = sorted(cur.fetchall())
    written = []
    for minute, orders, revenue, repeats in rows:
        if repeats:
            AGGREGATE_REPEATS.inc()
            log.error("order minute was already written: two leaders at once?", extra={"minute": minute})
            continue
        written.append(Minute(minute, orders, revenue))
        log.info(
            LOG_MESSAGE,
            extra={"minute": minute.isoformat(), "orders": orders, "revenue": float(revenue)},
        )
    if written:
        ORDERS_LAST_MINUTE.set(written[-1].orders)
        REVENUE_LAST_MINUTE.set(float(written[-1].revenue))
    return written
