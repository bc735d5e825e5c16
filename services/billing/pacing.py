"""Billing's own write budget (BILLING_MAX_ROWS_PER_SECOND): a backlog drains at a set pace, never in a rush
that starves the database of the other work it does.

Before each batch the consumer asks the pacer how long to wait: a batch of ``n`` rows "costs" ``n / rate``
seconds, and the next batch may start only when the previous ones are paid for. So the long-run insert rate
stays at or under the budget, while a lone order after a quiet spell is written at once (the budget carries
no debt across idle time). Nothing is dropped or dead-lettered: waiting deliveries stay unacknowledged in
the broker (at most BILLING_PREFETCH of them in this process), the rest stay queued.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from billing import metrics

#: Longest single sleep: the consumer checks for shutdown (and services its broker connection) in between.
_SLICE_SECONDS = 0.25


class RowPacer:
    """Spaces batches so that at most ``rows_per_second`` rows are inserted per second in the long run."""

    def __init__(self, rows_per_second: float, clock: Callable[[], float] = time.monotonic):
        if rows_per_second <= 0:
            raise ValueError("rows_per_second must be > 0 (0 means no pacer at all)")
        self.rows_per_second = rows_per_second
        self._clock = clock
        self._free_at = 0.0  # when the rows written so far are paid for
        self.waited_seconds = 0.0
        """Total time this pacer held batches back (also the billing_throttled_seconds_total metric)."""

    def delay(self, rows: int) -> float:
        """Seconds the next batch of ``rows`` must wait (0: now), and book its cost."""
        now = self._clock()
        start = max(now, self._free_at)
        self._free_at = start + rows / self.rows_per_second
        return start - now

    def pace(self, rows: int, sleep: Callable[[float], None], stopping: Callable[[], bool]) -> None:
        """Wait until a batch of ``rows`` may be written, in short ``sleep`` slices; return early when
        ``stopping()`` (shutdown writes what it already holds rather than outlive its grace period)."""
        remaining = self.delay(rows)
        if remaining <= 0:
            return
        metrics.PACED_BATCHES.inc()
        while remaining > 0 and not stopping():
            step = min(remaining, _SLICE_SECONDS)
            began = self._clock()
            sleep(step)
            slept = self._clock() - began
            remaining -= slept
            self.waited_seconds += slept
            metrics.THROTTLED_SECONDS.inc(slept)
