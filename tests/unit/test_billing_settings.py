"""billing.settings and the reconnect backoff: the numbers that decide how the consumer behaves."""

from __future__ import annotations

import pytest

from billing.settings import ConsumerSettings, backoff_delay
from common.config import ConfigError


def test_settings_are_read_from_billing_variables(monkeypatch):
    """BILLING_* variables override the defaults, with milliseconds converted to seconds."""
    monkeypatch.setenv("BILLING_PREFETCH", "200")
    monkeypatch.setenv("BILLING_BATCH_SIZE", "100")
    monkeypatch.setenv("BILLING_BATCH_WAIT_MS", "20")
    monkeypatch.setenv("BILLING_RECONNECT_INITIAL_MS", "250")
    monkeypatch.setenv("BILLING_RECONNECT_MAX_SECONDS", "5")
    monkeypatch.setenv("BILLING_SHUTDOWN_TIMEOUT_SECONDS", "7")
    assert ConsumerSettings.from_env() == ConsumerSettings(
        prefetch=200, batch_size=100, batch_wait=0.02, reconnect_initial=0.25, reconnect_max=5.0, shutdown_timeout=7.0
    )


def test_batch_larger_than_prefetch_is_a_configuration_error(monkeypatch):
    """A batch the broker can never fill is refused at start-up rather than silently slow."""
    monkeypatch.setenv("BILLING_PREFETCH", "100")
    monkeypatch.setenv("BILLING_BATCH_SIZE", "500")
    with pytest.raises(ConfigError, match="BILLING_BATCH_SIZE"):
        ConsumerSettings.from_env()


def test_backoff_grows_exponentially_within_jitter_bounds():
    """Attempt n waits between half and all of initial * 2**(n-1)."""
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
        delays = [backoff_delay(attempt, initial=0.5, maximum=30) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


def test_backoff_is_capped():
    """However many attempts failed, no wait exceeds the maximum (and huge attempt numbers do not overflow)."""
    assert all(7.5 <= backoff_delay(attempt, initial=0.5, maximum=15) <= 15 for attempt in (10, 100, 10_000))


def test_backoff_is_jittered():
    """Consumers that lost the broker together do not retry in lockstep."""
    assert len({backoff_delay(5, initial=0.5, maximum=30) for _ in range(20)}) > 1
