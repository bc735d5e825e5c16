"""``billing.pacing.RowPacer``: the arithmetic of billing's write budget, on a clock the test moves."""

from __future__ import annotations

import pytest

from billing.pacing import RowPacer


class Clock:
    """A monotonic clock that moves only when slept on."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_first_batch_goes_at_once_and_the_next_waits_for_its_cost():
    """At 100 rows/s a batch of 50 costs 0.5 s: the first starts now, the second 0.5 s later."""
    clock = Clock()
    pacer = RowPacer(100, clock=clock)
    assert pacer.delay(50) == 0
    assert pacer.delay(50) == pytest.approx(0.5)


def test_a_backlog_takes_at_least_rows_over_rate():
    """1,000 rows in batches of 100 at 200 rows/s: the pacer holds them back 4.5 s in all (the first
    batch is free, the other 900 rows cost 900 / 200 s), so the long-run rate is within the budget."""
    clock = Clock()
    pacer = RowPacer(200, clock=clock)
    began = clock.now
    for _ in range(10):
        pacer.pace(100, clock.sleep, lambda: False)
    assert pacer.waited_seconds == pytest.approx(4.5)
    assert 900 / (clock.now - began) <= 200 + 1e-9


def test_idle_time_is_not_saved_up_for_a_later_rush():
    """After a quiet minute a batch goes at once, but the one after it still waits its cost."""
    clock = Clock()
    pacer = RowPacer(10, clock=clock)
    pacer.delay(10)
    clock.sleep(60)
    assert pacer.delay(10) == 0
    assert pacer.delay(10) == pytest.approx(1.0)


def test_shutdown_cuts_the_wait_short():
    """``stopping()`` true: pace returns without sleeping the whole cost (the in-flight batch is written)."""
    clock = Clock()
    pacer = RowPacer(1, clock=clock)
    pacer.delay(100)
    pacer.pace(100, clock.sleep, lambda: True)
    assert pacer.waited_seconds == 0


def test_a_zero_budget_is_refused():
    """0 means no pacer at all (the consumer does not build one), never a pacer that waits forever."""
    with pytest.raises(ValueError):
        RowPacer(0)
