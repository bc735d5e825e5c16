"""The leader election's timing fits the issue's budget (arithmetic over the real settings, no servers)."""

from __future__ import annotations

from billing.leader import failover_budget
from billing.settings import JobSettings

ISSUE_BUDGET = 15.0


def test_a_vanished_leader_is_replaced_within_15_seconds():
    """With the default check interval, PostgreSQL's keepalives end a vanished leader's session and a
    follower takes the lock within 15 s."""
    *_, take_over = failover_budget(JobSettings().leader_check)
    assert take_over <= ISSUE_BUDGET


def test_a_partitioned_leader_steps_down_before_the_lock_can_be_taken():
    """The leader's own check gives up before the server frees the lock: never two leaders at once."""
    step_down, earliest_release, _take_over = failover_budget(JobSettings().leader_check)
    assert step_down < earliest_release
